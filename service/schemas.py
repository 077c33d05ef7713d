"""The HTTP API's data shapes, one per direction: JobCreate in, JobPublic/JobList out, ErrorBody.

The stored ``core.contract.records.Job`` is never returned as it is: ``JobPublic.from_job`` builds
the public view and takes freshly minted output URLs, because stored records hold keys only. The
public fields themselves live in ``core.contract.public`` (webhook bodies carry the same object).
"""

import json
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)

from core.contract.events import DEFAULT_WEBHOOK_EVENTS, WEBHOOK_EVENTS, WebhookEvent
from core.contract.params import DEFAULT_MODEL, PARAMS_BY_MODEL, ModelName, ModelParams
from core.contract.public import JobView, OutputPublic, public_fields
from core.contract.records import Job
from core.contract.uploads import MediaKind, Upload, UploadStatus, upload_id_of
from core.jobs.deliveries import Delivery, DeliveryState

MAX_URL_LENGTH = 2048
MAX_METADATA_BYTES = 4096  # serialized as compact JSON
MAX_METADATA_DEPTH = 5  # levels of objects/arrays, the top-level object counting as one



def _check_http_url(url: str) -> str:
    """Accept absolute http(s) URLs with a host, and nothing a fetcher could misread."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise ValueError("must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("must be an http or https URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    return url


HttpUrlStr = Annotated[
    str,
    Field(min_length=1, max_length=MAX_URL_LENGTH, json_schema_extra={"format": "uri"}),
    AfterValidator(_check_http_url),
]


def _check_input_url(url: str) -> str:
    """An http(s) URL the worker fetches, or ``upload://<id>`` of the caller's upload."""
    if upload_id_of(url) is not None:  # ValueError for a malformed upload:// URL
        return url
    return _check_http_url(url)


InputUrlStr = Annotated[
    str,
    Field(min_length=1, max_length=MAX_URL_LENGTH, json_schema_extra={"format": "uri"}),
    AfterValidator(_check_input_url),
]


def _exceeds_depth(value: Any, max_depth: int) -> bool:
    """Whether ``value`` nests objects/arrays deeper than ``max_depth``; iterative, so any depth is safe."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth + 1 > max_depth:
                return True
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return False


class JobCreate(BaseModel):
    """Body of ``POST /jobs``."""

    model_config = ConfigDict(extra="forbid")

    image_url: InputUrlStr = Field(
        description="Reference image of one person: http or https (the worker fetches it), or upload://<id> of "
        "your upload (POST /uploads)."
    )
    video_url: InputUrlStr = Field(
        description="Driving video: http or https (the worker fetches it), or upload://<id> of your upload."
    )
    model: ModelName = Field(
        default=DEFAULT_MODEL,
        description="The model to run (GET /models lists those this server serves, with their parameters).",
    )
    params: ModelParams | None = Field(
        default=None,
        description="Generation parameters of the chosen model (JobParams for mimicmotion-1.1, WanAnimateParams for "
        "wan2.2-animate); defaults where absent. A 422 names the field and the model.",
    )
    webhook_url: HttpUrlStr | None = Field(default=None, description="Receives Standard Webhooks POSTs.")
    webhook_events: list[WebhookEvent] = Field(
        default_factory=lambda: list(DEFAULT_WEBHOOK_EVENTS),
        max_length=len(WEBHOOK_EVENTS),
        description="Events sent to webhook_url; default: started and the terminal ones.",
    )
    timeout_s: int | None = Field(
        default=None,
        strict=True,  # a number only: true would otherwise become a 1-second deadline
        ge=1,
        description="Seconds from submission (queue time included) after which the job fails with error.code "
        "timeout; at most the server's MIMICMOTION_MAX_JOB_TIMEOUT_S, which also applies when absent.",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description=f"Small object echoed back (at most {MAX_METADATA_BYTES} bytes of JSON, "
        f"{MAX_METADATA_DEPTH} levels deep).",
    )

    @field_validator("params", mode="wrap")
    @classmethod
    def _params_of_the_model(cls, params: Any, _: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        # Validated as the named model's parameters only (the types share field names), so a refused field is
        # reported against that model's schema; model is declared first, so it is already parsed.
        model = info.data.get("model")
        if params is None or model is None:  # no model: its own error is reported
            return None
        return PARAMS_BY_MODEL[model].model_validate(params)

    @field_validator("webhook_events")
    @classmethod
    def _dedupe_events(cls, events: list[WebhookEvent]) -> list[WebhookEvent]:
        return list(dict.fromkeys(events))

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        # Depth first: json.dumps recurses once per level (a RecursionError and a 500, issue 19).
        if _exceeds_depth(metadata, MAX_METADATA_DEPTH):
            raise ValueError(f"is nested deeper than {MAX_METADATA_DEPTH} levels")
        try:
            size = len(json.dumps(metadata, separators=(",", ":"), allow_nan=False).encode())
        except ValueError as exc:
            raise ValueError(f"must be plain JSON ({exc})") from None
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"is {size} bytes of JSON; the limit is {MAX_METADATA_BYTES}")
        return metadata


class WebhookDeliveryPublic(BaseModel):
    """One webhook event for the job and how its delivery is going."""

    id: str = Field(description="The webhook-id header: the same on every attempt of this event.")
    type: WebhookEvent
    state: DeliveryState = Field(description="pending (waiting or retrying), delivered, or failed (gave up).")
    attempts: int = Field(description="Attempts made so far.")
    last_status: int | None = Field(description="HTTP status of the last attempt; null if none came back.")
    last_error: str | None = Field(description="Why the last attempt got no answer, if it did not.")
    next_retry_at: datetime | None = Field(description="When the next attempt is due, while retrying.")

    @classmethod
    def from_delivery(cls, delivery: Delivery) -> "WebhookDeliveryPublic":
        last = delivery.attempts[-1] if delivery.attempts else None
        return cls(
            id=delivery.id,
            type=delivery.type,
            state=delivery.state,
            attempts=len(delivery.attempts),
            last_status=last.status_code if last else None,
            last_error=last.error if last else None,
            next_retry_at=delivery.next_retry_at,
        )


class JobPublic(JobView):
    """A job as clients see it."""

    webhook_deliveries: list[WebhookDeliveryPublic] = Field(
        description="The job's webhook events in order, with their delivery state."
    )

    @classmethod
    def from_job(
        cls,
        job: Job,
        *,
        queue_position: int | None,
        output: OutputPublic | None,
        deliveries: list[Delivery] | None = None,
        pose_video_url: str | None = None,
        preview_url: str | None = None,
    ) -> "JobPublic":
        return cls(
            **public_fields(
                job, queue_position=queue_position, output=output, pose_video_url=pose_video_url,
                preview_url=preview_url,
            ),
            webhook_deliveries=[WebhookDeliveryPublic.from_delivery(d) for d in deliveries or []],
        )


class UploadCreate(BaseModel):
    """JSON body of ``POST /uploads`` for a direct upload: the client then PUTs the bytes to ``upload.url``."""

    model_config = ConfigDict(extra="forbid")

    filename: str | None = Field(default=None, max_length=255, description="The file's name, for your records.")
    content_type: str = Field(
        min_length=3, max_length=127, pattern=r"^(image|video)/[A-Za-z0-9.+-]+$",
        description="The file's type, image/... or video/...; sent as the PUT's Content-Type.",
    )  # fmt: skip
    size_bytes: int = Field(ge=1, strict=True, description="The file's exact size; the upload is checked against it.")


class UploadTarget(BaseModel):
    """Where a direct upload's bytes go: send ``method`` to ``url`` with ``headers`` (and no API key)."""

    url: str
    method: Literal["PUT"]
    headers: dict[str, str]
    expires_at: datetime


class UploadPublic(BaseModel):
    """An upload as clients see it; ``url`` goes into a job's image_url or video_url."""

    id: str
    url: str = Field(description="upload://<id>, accepted by image_url and video_url of your jobs.")
    status: UploadStatus = Field(description="pending: waiting for its direct upload; ready: a job may use it.")
    filename: str | None
    content_type: str | None = Field(description="Sniffed from the bytes once checked.")
    kind: MediaKind | None
    size_bytes: int
    sha256: str | None
    created_at: datetime
    expires_at: datetime = Field(description="Deleted after this; a job that uses it keeps it until the job ends.")
    upload: UploadTarget | None = Field(default=None, description="For a pending direct upload: where to send it.")

    @classmethod
    def from_upload(cls, upload: Upload, target: UploadTarget | None = None) -> "UploadPublic":
        return cls(
            id=upload.id, url=upload.url, status=upload.status, filename=upload.filename,
            content_type=upload.content_type, kind=upload.kind, size_bytes=upload.size_bytes, sha256=upload.sha256,
            created_at=upload.created_at, expires_at=upload.expires_at, upload=target,
        )  # fmt: skip


class JobList(BaseModel):
    data: list[JobPublic]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. not_found, invalid_request.")
    message: str
    details: list[dict[str, Any]] | None = Field(default=None, description="Per-field problems, for validation.")


class ErrorBody(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]


class ModelPublic(BaseModel):
    """One model this server serves (``GET /models``)."""

    name: str = Field(description="Pass as `model` to POST /jobs.")
    default: bool = Field(description="Used when POST /jobs names no model.")
    title: str
    license: str = Field(description="What the weights' licence allows.")
    summary: str
    queue: str = Field(description="The queue its jobs wait in (one worker process serves one model).")
    live_workers: int = Field(description="Workers with a live heartbeat serving this model; 0: its jobs wait.")
    params_schema: dict[str, Any] = Field(description="JSON Schema of its `params`, with defaults and ranges.")


class ModelList(BaseModel):
    data: list[ModelPublic]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    redis: str = Field(description="ok, or why Redis cannot be used.")
    storage: str = Field(description="ok, or why result storage cannot be used.")
    workers: list[str] = Field(description="Names of workers with a live heartbeat.")
    tiny_model: bool = Field(description="A worker runs the tiny random model: outputs are noise.")
    missing: list[str] = Field(default_factory=list, description="What keeps the service from being ready.")
    warning: str | None = None
