"""run_job when the job store fails mid-job: the job is left to its lease (then reaped), never failed."""

import uuid
from pathlib import Path
from typing import Any

import redis

from core.animate import Animator, load_animator
from core.contract.params import JobParams
from core.contract.records import Job, JobStatus, Stage
from core.execution.run import RunDeps, run_job
from core.jobs.store import JobStore
from core.models.files import resolve_model_files
from core.storage import create_storage
from tests.support.worker_settings import worker_settings
from worker.reaper import reap_once

PARAMS = JobParams(resolution=128, num_inference_steps=3, tile_size=2, tile_overlap=1, sample_stride=1, fps=8, seed=1)


class BlinkingStore(JobStore):
    """The real store, whose progress writes fail once denoising starts (Redis went away)."""

    def update_running(self, job_id: str, worker: str, **changes: Any) -> Job | None:
        if "progress" in changes and changes["progress"].stage is Stage.denoising:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        return super().update_running(job_id, worker, **changes)


def test_store_failure_mid_job_leaves_the_job_to_its_lease(
    redis_url: str, tmp_path: Path, tiny_model_dir: Path, short_inputs_url: str
) -> None:
    settings = worker_settings(tmp_path, redis_url, tiny_model_dir, lease_s=1)
    animator: Animator = load_animator(resolve_model_files(tiny_model_dir), device="cpu", dtype="float32")
    store = BlinkingStore(JobStore.from_url(redis_url).db)
    job = Job(id=uuid.uuid4().hex, owner="o", image_url=f"{short_inputs_url}/person.png",
              video_url=f"{short_inputs_url}/drive.mp4", params=PARAMS)  # fmt: skip
    store.create(job)
    deps = RunDeps(store=store, storage=create_storage(settings), animator=lambda: animator, settings=settings,
                   worker="w1")  # fmt: skip

    run_job(job.id, deps)

    after = store.get(job.id)
    assert (after.status, after.error) == (JobStatus.running, None)  # not failed as internal_error
    store.db.client.delete(f"mm:lease:{job.id}")  # the lease lapses (1 s) without waiting for it
    requeued: list[str] = []
    assert reap_once(store, lambda job_id, *_: requeued.append(job_id), max_attempts=3) == [job.id] == requeued
    assert store.get(job.id).status is JobStatus.queued
