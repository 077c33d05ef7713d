"""Typed results parsed from the gateway's JSON: Job (with Progress, JobError, JobOutput), JobPage, Upload, Event,
ModelInfo.

Parsing is lenient on purpose: a field the gateway adds later is ignored (and kept in ``raw``), an absent
optional field is None, so an older client keeps working against a newer gateway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})
# A gateway from before models served only this one, and its jobs name none.
DEFAULT_MODEL = "mimicmotion-1.1"


def parse_datetime(value: Any) -> datetime | None:
    """An ISO 8601 datetime as the gateway writes it (``...Z`` included, which Python < 3.11 refuses)."""
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    return datetime.fromisoformat(text)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Progress:
    """Where a running job is: ``stage`` (fetching, pose, conditioning, denoising, decoding, encoding,
    uploading), ``step`` of ``total_steps`` within it, ``fraction`` of the whole job (0 to 1)."""

    stage: str
    step: int
    total_steps: int
    fraction: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Progress:
        return cls(
            stage=str(data.get("stage", "")),
            step=int(data.get("step") or 0),
            total_steps=int(data.get("total_steps") or 0),
            fraction=float(data.get("fraction") or 0.0),
        )


@dataclass(frozen=True)
class JobError:
    """Why a job failed: a stable ``code`` (``no_person``, ``input_not_video``, ``timeout`` ...) and a message."""

    code: str
    message: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobError:
        return cls(code=str(data.get("code", "")), message=str(data.get("message", "")))


@dataclass(frozen=True)
class JobOutput:
    """A succeeded job's results. The URLs are signed and expire at ``expires_at``; ``Client.get`` mints new
    ones. ``size_bytes`` and ``sha256`` describe the video at ``video_url``."""

    video_url: str
    pose_video_url: str
    width: int
    height: int
    num_frames: int
    fps: int
    duration_s: float
    size_bytes: int | None
    sha256: str | None
    expires_at: datetime | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobOutput:
        return cls(
            video_url=str(data.get("video_url", "")),
            pose_video_url=str(data.get("pose_video_url", "")),
            width=int(data.get("width") or 0),
            height=int(data.get("height") or 0),
            num_frames=int(data.get("num_frames") or 0),
            fps=int(data.get("fps") or 0),
            duration_s=float(data.get("duration_s") or 0.0),
            size_bytes=data.get("size_bytes"),
            sha256=data.get("sha256"),
            expires_at=parse_datetime(data.get("expires_at")),
        )


@dataclass(frozen=True)
class Job:
    """A job as the gateway shows it. ``raw`` is the whole JSON object, for fields this client does not name.

    Example:
        >>> job = client.get(job_id)
        >>> job.status, job.progress.stage if job.progress else None
        ('running', 'denoising')
    """

    id: str
    status: str
    model: str  # the model that generates it (``Client.models()``); its params are that model's
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    params: dict[str, Any]
    progress: Progress | None
    queue_position: int | None
    error: JobError | None
    output: JobOutput | None
    metadata: dict[str, Any]
    timings: dict[str, float]
    data_removed_at: datetime | None
    attempts: int  # times a worker claimed the job
    # The denoising step the latest attempt resumed from (a previous attempt's checkpoint); None: it started fresh.
    # num_inference_steps: no step was left to run (it decoded the final latents, or uploaded the kept result).
    resumed_from_step: int | None
    # What the job reused from the workers' caches, e.g. {"driving_pose": "hit"}; None before the pose stage, or
    # with the pose cache off.
    cache: dict[str, str] | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def is_terminal(self) -> bool:
        """succeeded, failed or canceled: the job will not change any more."""
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        progress, error, output = data.get("progress"), data.get("error"), data.get("output")
        return cls(
            id=str(data["id"]),
            status=str(data["status"]),
            model=str(data.get("model") or DEFAULT_MODEL),
            created_at=parse_datetime(data.get("created_at")),
            started_at=parse_datetime(data.get("started_at")),
            finished_at=parse_datetime(data.get("finished_at")),
            params=_object(data.get("params")),
            progress=Progress.from_json(progress) if isinstance(progress, dict) else None,
            queue_position=data.get("queue_position"),
            error=JobError.from_json(error) if isinstance(error, dict) else None,
            output=JobOutput.from_json(output) if isinstance(output, dict) else None,
            metadata=_object(data.get("metadata")),
            timings=_object(data.get("timings")),
            data_removed_at=parse_datetime(data.get("data_removed_at")),
            attempts=int(data.get("attempts") or 0),
            resumed_from_step=data.get("resumed_from_step"),
            cache={str(k): str(v) for k, v in data["cache"].items()} if isinstance(data.get("cache"), dict) else None,
            raw=data,
        )


@dataclass(frozen=True)
class ModelInfo:
    """One model the gateway serves (``GET /models``): pass ``name`` as ``model=`` to ``submit``.

    ``params_schema`` is the JSON Schema of its ``params`` (names, defaults, ranges); ``live_workers`` 0 means
    no worker serves it right now, so its jobs wait in ``queue``. ``license`` is what its weights allow.

    Example:
        >>> [(model.name, model.live_workers) for model in client.models()]
        [('mimicmotion-1.1', 2), ('wan2.2-animate', 1)]
        >>> wan = next(model for model in client.models() if model.name == "wan2.2-animate")
        >>> wan.params_schema["properties"]["segment_frame_length"]["default"]
        77
    """

    name: str
    default: bool  # used when submit names no model
    title: str
    license: str
    summary: str
    queue: str
    live_workers: int
    params_schema: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelInfo:
        return cls(
            name=str(data["name"]),
            default=bool(data.get("default")),
            title=str(data.get("title") or ""),
            license=str(data.get("license") or ""),
            summary=str(data.get("summary") or ""),
            queue=str(data.get("queue") or ""),
            live_workers=int(data.get("live_workers") or 0),
            params_schema=_object(data.get("params_schema")),
            raw=data,
        )


def models_of(data: Any) -> list[ModelInfo]:
    """``GET /models``' ``data``, in the gateway's order."""
    items = _object(data).get("data")
    return [ModelInfo.from_json(item) for item in items] if isinstance(items, list) else []


@dataclass(frozen=True)
class JobPage:
    """One page of ``GET /jobs``: ``data`` newest first, ``next_cursor`` None on the last page."""

    data: list[Job]
    next_cursor: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobPage:
        jobs = data.get("data")
        items = jobs if isinstance(jobs, list) else []
        return cls(data=[Job.from_json(item) for item in items], next_cursor=data.get("next_cursor") or None)


@dataclass(frozen=True)
class UploadTarget:
    """Where to send a direct upload's bytes: ``method`` (PUT) ``url`` with exactly these ``headers``."""

    url: str
    method: str
    headers: dict[str, str]
    expires_at: datetime | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UploadTarget:
        headers = _object(data.get("headers"))
        return cls(
            url=str(data.get("url", "")),
            method=str(data.get("method") or "PUT"),
            headers={str(name): str(value) for name, value in headers.items()},
            expires_at=parse_datetime(data.get("expires_at")),
        )


@dataclass(frozen=True)
class Upload:
    """A file stored by the gateway; pass it (or its ``url``, ``upload://<id>``) as a job's image or video.

    ``status`` is ``ready`` once the gateway has checked it; a direct (presigned) upload is ``pending`` with a
    ``target`` (the JSON's ``upload`` object) until its bytes are sent and it is completed.
    """

    id: str
    url: str
    status: str
    filename: str | None
    content_type: str | None
    kind: str | None
    size_bytes: int | None
    sha256: str | None
    created_at: datetime | None
    expires_at: datetime | None
    target: UploadTarget | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Upload:
        target = data.get("upload")
        upload_id = str(data["id"])
        return cls(
            id=upload_id,
            url=str(data.get("url") or f"upload://{upload_id}"),
            status=str(data.get("status") or "ready"),
            filename=data.get("filename"),
            content_type=data.get("content_type"),
            kind=data.get("kind"),
            size_bytes=data.get("size_bytes"),
            sha256=data.get("sha256"),
            created_at=parse_datetime(data.get("created_at")),
            expires_at=parse_datetime(data.get("expires_at")),
            target=UploadTarget.from_json(target) if isinstance(target, dict) else None,
            raw=data,
        )


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event of a job: ``type`` is ``status`` (the status changed) or ``progress``; ``id`` is
    what the stream resumes from; ``job`` is the whole job at that moment."""

    type: str
    id: str | None
    job: Job


@dataclass(frozen=True)
class WebhookEvent:
    """A verified webhook: ``type`` (``job.succeeded`` ...), ``id`` (the webhook-id, the same on every retry:
    deduplicate on it), ``timestamp`` (unix seconds) and ``job``."""

    type: str
    id: str
    timestamp: int
    job: Job
