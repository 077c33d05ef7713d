"""A job as clients see it: the API's job object and the body of every webhook event share it.

Built from the stored ``Job``, with output URLs minted from its storage keys on every read
(``core.storage.mint_output``), so a URL in a response or a webhook is always fresh. Torch-free (the
gateway and the webhook worker use it).
"""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from core.contract.params import DEFAULT_MODEL, ModelName, ModelParams
from core.contract.records import Job, JobCache, JobError, JobStatus, Progress, params_of_its_model


class OutputPublic(BaseModel):
    """A succeeded job's results; the URLs are minted on every read and expire at ``expires_at``."""

    video_url: str
    pose_video_url: str
    width: int
    height: int
    num_frames: int
    fps: int
    duration_s: float
    size_bytes: int
    sha256: str
    expires_at: datetime


class JobView(BaseModel):
    """The public fields of a job (the API adds ``webhook_deliveries``; webhook bodies add ``type``)."""

    id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    deadline_at: datetime | None = Field(description="When the job fails with error.code timeout if not finished.")
    model: ModelName = Field(default=DEFAULT_MODEL, description="The model that generates the video (GET /models).")
    params: ModelParams = Field(description="Resolved parameters of the job's model, the seed actually used included.")
    progress: Progress | None
    queue_position: int | None = Field(description="Jobs ahead of this one (0: next); only while queued.")
    error: JobError | None
    output: OutputPublic | None
    metadata: dict[str, Any]
    webhook_url: str | None
    webhook_events: list[str]
    timings: dict[str, float] = Field(description="Seconds per stage.")
    attempts: int = Field(default=0, description="Times a worker has claimed this job (a retry counts again).")
    resumed_from_step: int | None = Field(
        default=None,
        description="The denoising step the latest attempt resumed from, after a worker was lost or stopped "
        "mid-job; null when it started fresh. Equal to params.num_inference_steps when the job had been lost after "
        "denoising: the attempt ran no denoising step, and if the result was already encoded, only fetched the "
        "inputs (to check they are the same) and uploaded it (timings then has fetching and uploading only).",
    )
    data_removed_at: datetime | None = Field(
        default=None, description="When the job's stored files were deleted (DELETE /jobs/{id}); output is null since."
    )
    pose_video_url: str | None = Field(
        default=None, description="The drawn pose video, from the end of the pose stage on (check the skeleton early)."
    )
    preview_url: str | None = Field(
        default=None,
        description="A small animated WebP of the current denoised estimate, renewed every few denoising steps.",
    )
    cache: JobCache | None = Field(
        default=None,
        description='What the job reused: {"driving_pose": "hit" | "miss"} once the pose stage ran; null before it '
        "or when the workers' pose cache is off.",
    )

    @model_validator(mode="before")
    @classmethod
    def _params_of_its_model(cls, data: Any) -> Any:
        return params_of_its_model(data)


def public_fields(
    job: Job,
    *,
    queue_position: int | None,
    output: OutputPublic | None,
    pose_video_url: str | None = None,
    preview_url: str | None = None,
) -> dict[str, Any]:
    """The ``JobView`` fields of ``job``, as keyword arguments for ``JobView`` or a subclass (URLs minted by
    the caller from the record's keys)."""
    return {
        "id": job.id,
        "status": job.status,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "deadline_at": job.deadline_at,
        "params": job.params,
        "progress": job.progress,
        "queue_position": queue_position if job.status is JobStatus.queued else None,
        "error": job.error,
        "output": output,
        "metadata": job.metadata,
        "webhook_url": job.webhook_url,
        "webhook_events": job.webhook_events,
        "timings": job.timings,
        "attempts": job.attempts,
        "resumed_from_step": job.resumed_from_step,
        "data_removed_at": job.data_removed_at,
        "pose_video_url": pose_video_url,
        "preview_url": preview_url,
        "cache": job.cache,
        "model": job.model,
    }
