"""Queued job records for in-process ``run_job`` tests, on the inputs the ``inputs_url`` fixture serves."""

import uuid
from typing import Any

from core.contract.params import JobParams
from core.contract.records import Job
from core.jobs.store import JobStore

# Tiny but real: resolution 128 gives 192x128 portrait frames; 17 frames at 24 fps, stride 2 -> 9 samples.
TINY_PARAMS = JobParams(
    resolution=128, num_inference_steps=2, tile_size=8, tile_overlap=2, sample_stride=2, fps=8, seed=7
)


def create_job(
    store: JobStore, inputs_url: str, *, video: str = "drive.mp4", image: str = "person.png", **fields: Any
) -> str:
    """Create a queued job on ``image`` and ``video``; ``fields`` set other Job fields (``params``, ``owner``)."""
    job = Job(
        id=uuid.uuid4().hex, image_url=f"{inputs_url}/{image}", video_url=f"{inputs_url}/{video}",
        **{"params": TINY_PARAMS, "owner": "owner", **fields},
    )  # fmt: skip
    store.create(job)
    return job.id
