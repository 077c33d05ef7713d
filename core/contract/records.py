"""The job record as stored: status, progress, outputs, timings. Torch-free.

``Job`` is what the store keeps; the gateway builds its public view from it and mints output
URLs on every read, so nothing here holds a URL that could expire.
"""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from core.contract.params import DEFAULT_MODEL, PARAMS_BY_MODEL, ModelName, ModelParams
from core.contract.stages import Stage


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.canceled})
# How long a finished job's record and its webhook deliveries are kept: Settings.job_retention_s's default.
DEFAULT_JOB_RETENTION_S = 7 * 24 * 3600


class Progress(BaseModel):
    stage: Stage
    step: int = 0
    total_steps: int = 0
    fraction: float = Field(default=0.0, ge=0.0, le=1.0, description="Of the whole job, all stages.")


class JobError(BaseModel):
    code: str
    message: str


class JobOutput(BaseModel):
    """Where the results are stored; URLs are minted from the keys when the job is read."""

    video_key: str
    pose_video_key: str
    width: int
    height: int
    num_frames: int
    fps: int
    duration_s: float
    size_bytes: int
    sha256: str


CacheUse = Literal["hit", "miss"]


class JobCache(BaseModel):
    """What the job took from the worker's caches instead of computing it."""

    driving_pose: CacheUse = Field(
        description="hit: the driving video's DWPose keypoints came from the pose cache (only the reference image "
        "was detected); miss: they were detected, and stored for the next job with this video."
    )


def params_of_its_model(data: Any) -> Any:
    """A job dict with its ``params`` parsed as its ``model``'s parameters (a before-validator of Job and JobView).

    The params types share field names (seed, fps, ...): which one a stored dict is comes from the job's
    model, never from trying each in turn. Records from before models had none: they are MimicMotion's.
    """
    if isinstance(data, dict) and isinstance(data.get("params"), dict):
        params_type = PARAMS_BY_MODEL.get(data.get("model", DEFAULT_MODEL))
        if params_type is not None:
            data = {**data, "params": params_type.model_validate(data["params"])}
    return data


def utc_now() -> datetime:
    return datetime.now(UTC)


class Job(BaseModel):
    id: str
    owner: str = Field(description="Identifies the API key that created the job (a hash, never the key).")
    status: JobStatus = JobStatus.queued
    created_at: datetime = Field(default_factory=utc_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    image_url: str
    video_url: str
    model: ModelName = Field(default=DEFAULT_MODEL, description="The model that generates the video.")
    params: ModelParams = Field(description="Resolved parameters of the job's model, the seed included.")
    metadata: dict[str, Any] = Field(default_factory=dict)
    webhook_url: str | None = None
    webhook_events: list[str] = Field(default_factory=list)
    deadline_at: datetime | None = Field(
        default=None, description="Past this time the job fails with error.code timeout, queued or running."
    )
    progress: Progress | None = None
    error: JobError | None = None
    output: JobOutput | None = None
    timings: dict[str, float] = Field(default_factory=dict, description="Seconds per stage.")
    attempts: int = Field(default=0, description="Times a worker has claimed this job.")
    resumed_from_step: int | None = Field(
        default=None,
        description="The denoising step this attempt resumed from (a previous attempt's checkpoint); null when "
        "it started fresh. num_inference_steps when no step was left: it decoded the final latents, or uploaded the "
        "result files a previous attempt had encoded (then timings has fetching and uploading only).",
    )
    queue: str = Field(default="gpu", description="The GPU-class queue the job was sent to (and is re-sent to).")
    worker: str | None = Field(default=None, description="The worker holding the job while it runs.")
    pose_video_key: str | None = Field(
        default=None, description="The drawn pose video, stored as soon as the pose stage ends."
    )
    preview_key: str | None = Field(default=None, description="The newest live preview of the denoised estimate.")
    data_removed_at: datetime | None = Field(
        default=None, description="When DELETE /jobs/{id} removed the job's stored files; output is gone since."
    )
    cache: JobCache | None = Field(
        default=None, description="What the pose stage reused; null before it, or with the pose cache off."
    )

    @model_validator(mode="before")
    @classmethod
    def _params_of_its_model(cls, data: Any) -> Any:
        return params_of_its_model(data)


def job_files_prefix(job_id: str) -> str:
    """The storage folder of all of a job's files, every attempt's (``DELETE /jobs/{id}`` removes it)."""
    return f"jobs/{job_id}/"
