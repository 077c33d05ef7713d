"""What a worker may prepare ahead for a queued job, and the interface run_job uses to take it.

Preparing is read-only: it never claims or changes the job. run_job still claims the job first and
uses a prepared entry only when its id matches; anything else is discarded.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:  # run_job's module imports these anyway; here they are only types
    from core.execution.poses import JobPoses
    from core.video.decode import DecodedVideo


@dataclass
class PreparedInputs:
    """A queued job's fetched, decoded and pose-extracted inputs (with what the pose cache gave)."""

    job_id: str
    image: np.ndarray  # (H0, W0, 3) uint8, as fetched
    video: "DecodedVideo"
    poses: "JobPoses"
    fetch_s: float


class InputsPrefetch(Protocol):
    def take(self, job_id: str) -> PreparedInputs | None:
        """The prepared inputs of ``job_id`` (waiting if they are being prepared), else None."""

    def prepare_next(self, current_job_id: str) -> None:
        """Start preparing the next queued job (not ``current_job_id``) in the background."""
