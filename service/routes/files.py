"""Signed, expiring downloads of locally stored results under /files/{key}, and signed PUTs of direct uploads.

Only with local storage: the link's signature and expiry are checked by the storage that minted
it. With S3, clients download from (and upload to) S3's own presigned URLs and these routes answer 404.
"""

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from core.errors import JobNotFoundError
from core.storage import LocalStorage
from service.deps import SettingsDep, StorageDep
from service.errors import FileLinkError, error_responses
from service.uploads import INCOMING_PREFIX, receive_body, scratch_dir

router = APIRouter(tags=["files"])


@router.get(
    "/files/{key:path}",
    summary="Download a result through a signed link",
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}}, "description": "The file"}, **error_responses(403, 404)},
)
def get_file(
    key: str,
    storage: StorageDep,
    expires: Annotated[int, Query(description="Unix time the link stops working.")],
    signature: Annotated[str, Query(max_length=128, description="The link's signature.")],
) -> FileResponse:
    if not isinstance(storage, LocalStorage):
        raise JobNotFoundError("results are served from object storage, not from this gateway")
    if not storage.verify_signed_path(key, expires, signature, now=time.time()):
        raise FileLinkError("this link is invalid or has expired; read the job again for a fresh one")
    try:
        path = storage.open_path(key)
    except FileNotFoundError:
        raise JobNotFoundError("this result is no longer stored") from None
    return FileResponse(path, media_type="video/mp4" if key.endswith(".mp4") else None)


@router.put(
    "/files/{key:path}",
    summary="Send a direct upload's bytes through a signed link (local storage)",
    status_code=200,
    response_class=Response,
    responses={200: {"description": "Stored; now POST /uploads/{id}/complete"}, **error_responses(403, 404, 413)},
)
async def put_file(
    key: str,
    request: Request,
    storage: StorageDep,
    settings: SettingsDep,
    expires: Annotated[int, Query(description="Unix time the link stops working.")],
    signature: Annotated[str, Query(max_length=128, description="The link's signature.")],
) -> Response:
    if not isinstance(storage, LocalStorage) or not key.startswith(INCOMING_PREFIX):
        raise JobNotFoundError("uploads go to object storage, not to this gateway")
    if not storage.verify_signed_put(key, expires, signature, now=time.time()):
        raise FileLinkError("this upload link is invalid or has expired; start the upload again")
    async with scratch_dir(settings) as tmp:
        await receive_body(request, tmp / "upload", max_bytes=settings.upload_max_bytes)
        await run_in_threadpool(storage.put_file, key, tmp / "upload", "application/octet-stream")
    return Response(status_code=200)
