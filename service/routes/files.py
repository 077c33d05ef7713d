"""Signed, expiring downloads of locally stored results under /files/{key}.

Only with local storage: the link's signature and expiry are checked by the storage that minted
it. With S3, clients download from S3's own presigned URLs and this route answers 404.
"""

import time
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from core.errors import JobNotFoundError
from core.storage import LocalStorage
from service.deps import StorageDep
from service.errors import FileLinkError, error_responses

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
