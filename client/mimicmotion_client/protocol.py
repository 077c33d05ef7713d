"""The API without I/O: each operation is a generator that yields the requests it needs and parses the answers.

``Client`` and ``AsyncClient`` drive the same generators (``flow.send(reply)`` until ``StopIteration``), so an
operation of several requests (a direct upload: create, PUT, complete; a submit that uploads its inputs first)
is written once. A transport only sends a ``RequestSpec`` (with retries) and hands back a ``Reply``; any status
outside ``spec.ok`` has become a ``MimicMotionError`` by then.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar, Union
from urllib.parse import quote

from mimicmotion_client.errors import (
    DOWNLOAD_MISMATCH,
    INVALID_INPUT,
    UPLOAD_TOO_LARGE,
    MimicMotionError,
    UploadTooLargeError,
    error_for_status,
)
from mimicmotion_client.sources import Source, source_of
from mimicmotion_client.types import Job, JobPage, ModelInfo, Upload, models_of

T = TypeVar("T")
DEFAULT_MULTIPART_THRESHOLD_BYTES = 16 * 1024 * 1024  # above this, bytes go straight to storage (presigned PUT)
MAX_PREFER_WAIT_S = 60  # the gateway clamps Prefer: wait to this
URL_SCHEMES = ("http://", "https://", "upload://")
InputValue = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], Upload]


@dataclass(frozen=True)
class RequestSpec:
    """One HTTP request, transport-neutral.

    ``url`` is a path under the client's base URL, or an absolute URL (a presigned upload, a result), which
    gets no API key: those URLs carry their own signature, and storage refuses a second credential.
    """

    method: str
    url: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    form_file: Source | None = None  # sent as multipart/form-data field "file"
    content: Source | None = None  # sent as the raw body, with its Content-Length
    read_timeout_s: float | None = None  # None: the client's timeout
    download_to: Path | None = None  # stream a 200 answer's body into this file
    ok: tuple[int, ...] = (200,)

    @property
    def authenticated(self) -> bool:
        return not self.url.startswith(("http://", "https://"))


@dataclass(frozen=True)
class Reply:
    """An answer: its status, headers (names lower-case), parsed JSON body (None if not JSON); for a download,
    the bytes written and their SHA-256."""

    status: int
    headers: Mapping[str, str]
    body: Any
    text: str = ""  # the start of a body that is not the gateway's JSON, for error messages
    size_bytes: int = 0
    sha256: str | None = None


Flow = Generator[RequestSpec, Reply, T]


def parse_body(content: bytes) -> Any:
    try:
        return json.loads(content) if content else None
    except ValueError:
        return None


def check_reply(spec: RequestSpec, reply: Reply) -> Reply:
    """The reply when its status is one ``spec`` expects; else the MimicMotionError it stands for."""
    if reply.status in spec.ok:
        return reply
    raise error_for_status(reply.status, reply.body, reply.text)


def _job_path(job_id: str, suffix: str = "") -> str:
    return f"/jobs/{quote(str(job_id), safe='')}{suffix}"


def _upload_path(upload_id: str, suffix: str = "") -> str:
    return f"/uploads/{quote(str(upload_id), safe='')}{suffix}"


def get_job(job_id: str) -> Flow[Job]:
    reply = yield RequestSpec("GET", _job_path(job_id))
    return Job.from_json(reply.body)


def list_page(*, limit: int, cursor: str | None) -> Flow[JobPage]:
    params: dict[str, Any] = {"limit": limit} if cursor is None else {"limit": limit, "cursor": cursor}
    reply = yield RequestSpec("GET", "/jobs", params=params)
    return JobPage.from_json(reply.body)


def list_models() -> Flow[list[ModelInfo]]:
    reply = yield RequestSpec("GET", "/models")
    return models_of(reply.body)


def cancel_job(job_id: str) -> Flow[Job]:
    """Cancel; a 409 for a job that is canceled already counts as done (the answer to an earlier try of this
    very request may have been lost)."""
    reply = yield RequestSpec("POST", _job_path(job_id, "/cancel"), ok=(200, 409))
    if reply.status == 200:
        return Job.from_json(reply.body)
    job = yield from get_job(job_id)
    if job.status == "canceled":
        return job
    raise error_for_status(409, reply.body, "")


def delete_job(job_id: str) -> Flow[Job]:
    reply = yield RequestSpec("DELETE", _job_path(job_id))
    return Job.from_json(reply.body)


def get_upload(upload_id: str) -> Flow[Upload]:
    reply = yield RequestSpec("GET", _upload_path(upload_id))
    return Upload.from_json(reply.body)


def delete_upload(upload_id: str) -> Flow[None]:
    yield RequestSpec("DELETE", _upload_path(upload_id), ok=(204, 200))


def upload(source: Source, *, multipart_threshold_bytes: int, max_upload_bytes: int | None) -> Flow[Upload]:
    """Small files as one multipart POST; larger ones straight to storage: create, PUT the bytes, complete."""
    if max_upload_bytes is not None and source.size_bytes > max_upload_bytes:
        raise UploadTooLargeError(
            f"{source.filename} is {source.size_bytes} bytes; the gateway takes at most {max_upload_bytes}",
            code=UPLOAD_TOO_LARGE,
        )
    if source.size_bytes <= multipart_threshold_bytes:
        reply = yield RequestSpec("POST", "/uploads", form_file=source, ok=(200, 201))
        return Upload.from_json(reply.body)
    declared = {"filename": source.filename, "content_type": source.content_type, "size_bytes": source.size_bytes}
    reply = yield RequestSpec("POST", "/uploads", json=declared, ok=(200, 201))
    pending = Upload.from_json(reply.body)
    if pending.target is None:
        raise MimicMotionError(f"upload {pending.id}: the gateway sent no upload URL", code="invalid_response")
    target = pending.target
    headers = {name: value for name, value in target.headers.items() if name.lower() != "content-length"}
    yield RequestSpec(target.method, target.url, headers=headers, content=source, ok=(200, 201, 204))
    reply = yield RequestSpec("POST", _upload_path(pending.id, "/complete"))
    return Upload.from_json(reply.body)


def input_url(
    name: str, value: InputValue, *, multipart_threshold_bytes: int, max_upload_bytes: int | None
) -> Flow[str]:
    """The URL a job takes for ``value``: URLs as they are, an Upload's url, anything else uploaded first."""
    if isinstance(value, Upload):
        return value.url
    if isinstance(value, str) and value.startswith(URL_SCHEMES):
        return value
    if isinstance(value, str) and not os.path.isfile(value):
        raise MimicMotionError(
            f"{name} must be an http(s) or upload:// URL or an existing file; {value!r} is neither",
            code=INVALID_INPUT,
        )
    source = source_of(value, name=name)
    uploaded = yield from upload(
        source, multipart_threshold_bytes=multipart_threshold_bytes, max_upload_bytes=max_upload_bytes
    )
    return uploaded.url


@dataclass(frozen=True)
class JobRequest:
    """What ``submit`` sends besides the inputs (the fields of ``POST /jobs``), plus its headers."""

    params: Mapping[str, Any] | None = None
    webhook_url: str | None = None
    webhook_events: Sequence[str] | None = None
    metadata: Mapping[str, Any] | None = None
    timeout_s: int | None = None
    wait_s: int | None = None  # Prefer: wait=N: the gateway holds the answer until the job ends or N s pass
    idempotency_key: str | None = None
    model: str | None = None  # None: the gateway's default model


def submit(
    image: InputValue,
    video: InputValue,
    request: JobRequest,
    *,
    multipart_threshold_bytes: int,
    max_upload_bytes: int | None,
    read_timeout_s: float,
) -> Flow[Job]:
    """Upload what is local, then ``POST /jobs`` under one Idempotency-Key for every try of it."""
    body: dict[str, Any] = {}
    for name, value in (("image", image), ("video", video)):
        body[f"{name}_url"] = yield from input_url(
            name, value, multipart_threshold_bytes=multipart_threshold_bytes, max_upload_bytes=max_upload_bytes
        )
    optional = {
        "model": request.model,
        "params": dict(request.params) if request.params is not None else None,
        "webhook_url": request.webhook_url,
        "webhook_events": list(request.webhook_events) if request.webhook_events is not None else None,
        "metadata": dict(request.metadata) if request.metadata is not None else None,
        "timeout_s": request.timeout_s,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    # One key for the whole call: a try whose answer was lost, sent again, finds the job it made.
    headers = {"Idempotency-Key": request.idempotency_key or str(uuid.uuid4())}
    timeout_s = read_timeout_s
    if request.wait_s is not None:
        wait_s = max(0, min(int(request.wait_s), MAX_PREFER_WAIT_S))
        headers["Prefer"] = f"wait={wait_s}"
        timeout_s = max(read_timeout_s, wait_s + 30.0)
    reply = yield RequestSpec("POST", "/jobs", json=body, headers=headers, read_timeout_s=timeout_s, ok=(200, 201, 202))
    return Job.from_json(reply.body)


def download(job: Job | str, path: str | os.PathLike[str], *, what: str) -> Flow[Path]:
    """Fetch a succeeded job's ``video`` or ``pose_video`` into ``path`` (the video checked by size and SHA-256)."""
    if what not in ("video", "pose_video"):
        raise MimicMotionError(f"what must be 'video' or 'pose_video', not {what!r}", code=INVALID_INPUT)
    # Read the job afresh (an id, or a job whose URLs may have expired): every read mints new URLs.
    current = yield from get_job(job.id if isinstance(job, Job) else job)
    if current.status != "succeeded" or current.output is None:
        state = "its data was removed" if current.data_removed_at is not None else f"it is {current.status}"
        raise MimicMotionError(f"job {current.id} has no output to download: {state}", code="no_output")
    url = current.output.video_url if what == "video" else current.output.pose_video_url
    target = Path(path)
    reply = yield RequestSpec("GET", url, download_to=target)
    output = current.output
    if what == "video" and (
        (output.size_bytes is not None and reply.size_bytes != output.size_bytes)
        or (output.sha256 is not None and reply.sha256 != output.sha256)
    ):
        target.unlink(missing_ok=True)
        raise MimicMotionError(
            f"the downloaded video of job {current.id} is {reply.size_bytes} bytes with SHA-256 {reply.sha256}; "
            f"the job says {output.size_bytes} bytes, {output.sha256}",
            code=DOWNLOAD_MISMATCH,
        )
    return target


class DownloadFile:
    """Writes a download to ``PATH.part`` and moves it into place only when complete (a retry starts over)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".part")
        self.size_bytes = 0
        self._hash = hashlib.sha256()
        self._file: IO[bytes] | None = None

    def __enter__(self) -> DownloadFile:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.partial.open("wb")
        return self

    def write(self, chunk: bytes) -> None:
        assert self._file is not None
        self._file.write(chunk)
        self.size_bytes += len(chunk)
        self._hash.update(chunk)

    def reply(self, status: int, headers: Mapping[str, str]) -> Reply:
        """Close and move the file into place; the Reply with its size and SHA-256."""
        assert self._file is not None
        self._file.close()
        self.partial.replace(self.path)
        return Reply(status, headers, None, size_bytes=self.size_bytes, sha256=self._hash.hexdigest())

    def __exit__(self, *exc_info: object) -> None:
        if self._file is not None:
            self._file.close()
        self.partial.unlink(missing_ok=True)
