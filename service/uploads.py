"""Uploads at the gateway: a multipart body streamed to storage under a byte cap, or a direct upload
(a signed PUT URL, then ``complete``); each file checked before any job may use it.

Bytes pass through a scratch file under ``data_dir``: the cap is enforced while they stream (413 at the
first byte over it), the sha256 is computed on the way, and the media check runs on the file in a child
process (service.media_check). Storage keys: ``incoming/{id}`` for a direct upload's unchecked bytes,
``uploads/{id}`` for checked ones; only the latter is ever read by a worker.
"""

import hashlib
import logging
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO
from uuid import uuid4

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from core.contract.records import utc_now
from core.contract.uploads import MediaInfo, MediaKind, Upload, UploadStatus, incoming_key, upload_key
from core.errors import InvalidUploadError, MimicMotionError, UploadTooLargeError
from core.jobs.uploads import Uploads
from core.settings import Settings
from core.storage import MissingObjectError, Storage, file_sha256
from service.media_check import check_media
from service.schemas import UploadCreate, UploadTarget

logger = logging.getLogger(__name__)

INCOMING_PREFIX = incoming_key("")  # the only keys a signed PUT may write
MULTIPART_STREAM_S = 3600  # how long one multipart upload counts as in flight, at most
_FORM_FIELD = "file"


@dataclass(frozen=True)
class ReceivedFile:
    path: Path
    filename: str | None
    size_bytes: int
    sha256: str


def new_upload_id() -> str:
    return uuid4().hex


@contextmanager
def scratch_dir_sync(settings: Settings) -> Iterator[Path]:
    """A scratch directory under data_dir for one upload's bytes, removed afterwards."""
    scratch = settings.data_dir / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="upload-", dir=scratch) as tmp:
        yield Path(tmp)


@asynccontextmanager
async def scratch_dir(settings: Settings) -> AsyncIterator[Path]:
    with scratch_dir_sync(settings) as tmp:
        yield tmp


class _CappedFile:
    """Writes to ``file`` and hashes, refusing the first byte past ``max_bytes``."""

    def __init__(self, file: BinaryIO, max_bytes: int) -> None:
        self.file, self.max_bytes = file, max_bytes
        self.size_bytes = 0
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.size_bytes += len(data)
        if self.size_bytes > self.max_bytes:
            raise UploadTooLargeError(f"the file is larger than this server's limit of {self.max_bytes} bytes")
        self.sha256.update(data)
        self.file.write(data)


async def receive_body(request: Request, dest: Path, *, max_bytes: int) -> int:
    """Stream a raw request body (a direct upload's PUT) to ``dest`` under ``max_bytes``; its size."""
    with dest.open("wb") as file:
        capped = _CappedFile(file, max_bytes)
        async for chunk in request.stream():
            capped.write(chunk)
    return capped.size_bytes


async def receive_multipart(request: Request, dest: Path, *, max_bytes: int) -> ReceivedFile:
    """Stream the ``file`` field of a multipart/form-data body to ``dest``; other fields are ignored.

    Raises:
        UploadTooLargeError: the file passes ``max_bytes`` (raised while it streams).
        InvalidUploadError: not multipart, no ``file`` field, or a body that ends early.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidUploadError("send the file as multipart/form-data with a boundary, in the field 'file'")
    part: dict[str, bytes] = {}
    header_field, header_value = bytearray(), bytearray()
    state = {"in_file": False, "files": 0, "done": False, "filename": None}
    with dest.open("wb") as file:
        capped = _CappedFile(file, max_bytes)

        def on_part_begin() -> None:
            part.clear()

        def on_header_field(data: bytes, start: int, end: int) -> None:
            header_field.extend(data[start:end])

        def on_header_value(data: bytes, start: int, end: int) -> None:
            header_value.extend(data[start:end])

        def on_header_end() -> None:
            part[bytes(header_field).lower().decode("latin-1")] = bytes(header_value)
            header_field.clear()
            header_value.clear()

        def on_headers_finished() -> None:
            _, disposition = parse_options_header(part.get("content-disposition", b""))
            is_file = disposition.get(b"name") == _FORM_FIELD.encode() and state["files"] == 0
            state["in_file"] = is_file
            if is_file:
                state["files"] = 1
                name = disposition.get(b"filename")
                state["filename"] = name.decode("utf-8", "replace")[:255] if name else None

        def on_part_data(data: bytes, start: int, end: int) -> None:
            if state["in_file"]:
                capped.write(data[start:end])

        def on_part_end() -> None:
            state["in_file"] = False

        def on_end() -> None:
            state["done"] = True

        callbacks = {
            "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
            "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data, "on_part_end": on_part_end, "on_end": on_end,
        }  # fmt: skip
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        try:
            async for chunk in request.stream():
                parser.write(chunk)
            parser.finalize()
        except MimicMotionError:
            raise
        except Exception as exc:  # python-multipart's parse errors: a malformed body
            raise InvalidUploadError(f"the multipart body is malformed ({exc})") from None
    if not state["files"]:
        raise InvalidUploadError("the multipart body has no 'file' field")
    if not state["done"]:
        raise InvalidUploadError("the multipart body ended before its closing boundary (truncated upload)")
    filename = state["filename"] if isinstance(state["filename"], str) else None
    return ReceivedFile(dest, filename, capped.size_bytes, capped.sha256.hexdigest())


def _checked(media: MediaInfo, size_bytes: int, settings: Settings) -> MediaInfo:
    if media.kind is MediaKind.image and size_bytes > settings.fetch_max_image_bytes:
        raise UploadTooLargeError(
            f"the image is {size_bytes} bytes; images are limited to {settings.fetch_max_image_bytes} bytes"
        )
    return media


async def store_multipart(
    request: Request, uploads: Uploads, storage: Storage, settings: Settings, *, owner: str
) -> Upload:
    """Receive, check and store a multipart upload for ``owner``; the answer of ``POST /uploads``."""
    upload_id = new_upload_id()
    uploads.begin(owner, upload_id, until=utc_now() + timedelta(seconds=MULTIPART_STREAM_S),
                  limit=settings.max_uploads_in_flight_per_key)  # fmt: skip
    try:
        async with scratch_dir(settings) as tmp:
            received = await receive_multipart(request, tmp / "upload", max_bytes=settings.upload_max_bytes)
            media = _checked(await run_in_threadpool(check_media, received.path, settings), received.size_bytes,
                             settings)  # fmt: skip
            key = upload_key(upload_id)
            await run_in_threadpool(storage.put_file, key, received.path, media.content_type)
    finally:
        uploads.end(owner, upload_id)
    created_at = utc_now()
    upload = Upload(
        id=upload_id, owner=owner, status=UploadStatus.ready, key=key, filename=received.filename,
        content_type=media.content_type, kind=media.kind, size_bytes=received.size_bytes, sha256=received.sha256,
        created_at=created_at, expires_at=created_at + timedelta(seconds=settings.upload_ttl_s),
    )  # fmt: skip
    logger.info("upload %s: %s, %d bytes", upload_id, media.content_type, received.size_bytes)
    return uploads.save(upload)


def start_direct_upload(
    body: UploadCreate, uploads: Uploads, storage: Storage, settings: Settings, *, owner: str
) -> tuple[Upload, UploadTarget]:
    """A pending upload and the signed PUT its client sends the bytes with."""
    if body.size_bytes > settings.upload_max_bytes:
        raise UploadTooLargeError(
            f"size_bytes is {body.size_bytes}; this server accepts files of at most {settings.upload_max_bytes} bytes"
        )
    upload_id = new_upload_id()
    presigned = storage.presign_put(incoming_key(upload_id), settings.upload_url_ttl_s, body.content_type)
    uploads.begin(owner, upload_id, until=presigned.expires_at, limit=settings.max_uploads_in_flight_per_key)
    created_at = utc_now()
    upload = Upload(
        id=upload_id, owner=owner, status=UploadStatus.pending, key=upload_key(upload_id), filename=body.filename,
        declared_content_type=body.content_type, size_bytes=body.size_bytes, created_at=created_at,
        expires_at=created_at + timedelta(seconds=settings.upload_ttl_s),
        upload_url_expires_at=presigned.expires_at,
    )  # fmt: skip
    uploads.save(upload)
    target = UploadTarget(url=presigned.url, method="PUT", headers=presigned.headers, expires_at=presigned.expires_at)
    return upload, target


def complete_direct_upload(upload: Upload, uploads: Uploads, storage: Storage, settings: Settings, tmp: Path) -> Upload:
    """Check a direct upload's bytes and make it ready; a repeat on a ready upload returns it.

    A failed check deletes the bytes and leaves the upload pending: the client may PUT again.

    Raises:
        InvalidUploadError: nothing was sent, or not the declared size; or a media error (see check_media).
    """
    if upload.status is UploadStatus.ready:
        return upload
    incoming, local = incoming_key(upload.id), tmp / "upload"
    try:
        version = storage.get_file(incoming, local)
    except MissingObjectError:
        raise InvalidUploadError(
            f"upload {upload.id} has no bytes yet: PUT the file to its upload URL first, then complete it"
        ) from None
    try:
        size_bytes = local.stat().st_size
        if size_bytes != upload.size_bytes:
            raise InvalidUploadError(
                f"upload {upload.id} received {size_bytes} bytes but {upload.size_bytes} were declared; PUT the "
                "whole file again"
            )
        media = _checked(check_media(local, settings), size_bytes, settings)
    except MimicMotionError:
        storage.delete(incoming)
        raise
    storage.move(incoming, upload.key, version=version)  # only the version that was checked
    ready = upload.model_copy(
        update={"status": UploadStatus.ready, "content_type": media.content_type, "kind": media.kind,
                "sha256": file_sha256(local)}
    )  # fmt: skip
    uploads.save(ready)
    uploads.end(upload.owner, upload.id)
    return ready


def delete_upload(upload: Upload, uploads: Uploads, storage: Storage) -> None:
    """Remove an upload's bytes (checked or not) and leave a tombstone."""
    if upload.status is not UploadStatus.deleted:
        storage.delete(incoming_key(upload.id))
        storage.delete(upload.key)
        uploads.mark_deleted(upload)
