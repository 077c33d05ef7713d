"""Routes for /uploads: a file in one multipart request, or a direct upload (a signed PUT, then complete)."""

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from core.jobs.uploads import Uploads
from service import uploads as upload_flow
from service.deps import OwnerDep, SettingsDep, StorageDep, StoreDep
from service.errors import error_responses
from service.schemas import UploadCreate, UploadPublic

UploadId = Annotated[str, Path(max_length=64, description="The upload's id.")]
MAX_JSON_BODY_BYTES = 4096

router = APIRouter(prefix="/uploads", tags=["uploads"], responses=error_responses(401))

_CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/UploadCreate"}},
        },
    }
}


@router.post(
    "",
    status_code=201,
    response_model=UploadPublic,
    summary="Upload an image or a video (multipart), or start a direct upload (JSON)",
    description="multipart/form-data with the field `file`: the file is stored and checked, and the upload is "
    "ready. A JSON body (filename, content_type, size_bytes): the upload is pending; PUT the bytes to "
    "`upload.url` with `upload.headers`, then POST /uploads/{id}/complete.",
    openapi_extra=_CREATE_BODY,
    responses=error_responses(400, 413, 415, 422, 429, 503),
)
async def create_upload(
    request: Request, owner: OwnerDep, store: StoreDep, storage: StorageDep, settings: SettingsDep
) -> UploadPublic:
    uploads = Uploads(store.db)
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await _json_body(request)
        upload, target = await run_in_threadpool(
            upload_flow.start_direct_upload, body, uploads, storage, settings, owner=owner
        )
        return UploadPublic.from_upload(upload, target)
    upload = await upload_flow.store_multipart(request, uploads, storage, settings, owner=owner)
    return UploadPublic.from_upload(upload)


async def _json_body(request: Request) -> UploadCreate:
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > MAX_JSON_BODY_BYTES:
            raise RequestValidationError([{"loc": ("body",), "msg": "is too long", "type": "value_error"}])
    try:
        return UploadCreate.model_validate_json(bytes(raw))
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False, include_input=False)]
        ) from None


@router.post(
    "/{upload_id}/complete",
    response_model=UploadPublic,
    summary="Check a direct upload's bytes and make it ready",
    responses=error_responses(404, 413, 415, 422, 503),
)
def complete_upload(
    upload_id: UploadId, owner: OwnerDep, store: StoreDep, storage: StorageDep, settings: SettingsDep
) -> UploadPublic:
    uploads = Uploads(store.db)
    upload = uploads.get(upload_id, owner=owner)
    with upload_flow.scratch_dir_sync(settings) as tmp:
        return UploadPublic.from_upload(upload_flow.complete_direct_upload(upload, uploads, storage, settings, tmp))


@router.get("/{upload_id}", response_model=UploadPublic, summary="Get an upload", responses=error_responses(404))
def get_upload(upload_id: UploadId, owner: OwnerDep, store: StoreDep) -> UploadPublic:
    return UploadPublic.from_upload(Uploads(store.db).get(upload_id, owner=owner))


@router.delete(
    "/{upload_id}",
    status_code=204,
    response_class=Response,
    summary="Delete an upload's file",
    description="Jobs that were given it and have not fetched it yet fail with input_unreachable.",
    responses=error_responses(404, 503),
)
def delete_upload(upload_id: UploadId, owner: OwnerDep, store: StoreDep, storage: StorageDep) -> Response:
    uploads = Uploads(store.db)
    upload_flow.delete_upload(uploads.get(upload_id, owner=owner, deleted=True), uploads, storage)
    return Response(status_code=204)
