"""Deadlines and cancellation of running work, in-process: run_job with the tiny model on real Redis.

The worker must stop between denoising steps, record the job's end, keep no lease, and run the next
job at once (no restart).
"""

import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.animate import Animator
from core.contract.params import JobParams
from core.contract.records import Job, JobStatus, Stage, utc_now
from core.execution.run import RunDeps, run_job
from core.jobs.deliveries import Deliveries
from core.jobs.store import JobStore
from core.storage import create_storage
from tests.support.worker_settings import worker_settings

# Enough steps that a cancel or deadline lands mid-denoising; the job after it is quick.
PARAMS = JobParams(resolution=128, num_inference_steps=4, tile_size=8, tile_overlap=2, sample_stride=2, fps=8, seed=3)
QUICK = PARAMS.model_copy(update={"num_inference_steps": 2})


class HookedStore(JobStore):
    """The real store, running ``on_progress`` after every progress write."""

    def __init__(self, url: str) -> None:
        super().__init__(JobStore.from_url(url).db)
        self.stages: list[Stage] = []
        self.on_progress = lambda job_id, progress: None

    def update_running(self, job_id: str, worker: str, **changes: Any) -> Job | None:
        job = super().update_running(job_id, worker, **changes)
        if "progress" in changes:
            self.stages.append(changes["progress"].stage)
            self.on_progress(job_id, changes["progress"])
        return job


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self.offset


@pytest.fixture
def store(redis_url: str) -> HookedStore:
    return HookedStore(redis_url)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def deps(store: HookedStore, tmp_path: Path, tiny_model_dir: Path, redis_url: str, animator: Animator,
         clock: Clock) -> RunDeps:  # fmt: skip
    settings = worker_settings(tmp_path, redis_url, tiny_model_dir)
    return RunDeps(store=store, storage=create_storage(settings), animator=lambda: animator, settings=settings,
                   worker="gpu0@host", wall_clock=clock)  # fmt: skip


def submit(store: JobStore, inputs_url: str, **changes: Any) -> Job:
    job = Job(
        id=uuid.uuid4().hex, owner="owner", image_url=f"{inputs_url}/person.png", video_url=f"{inputs_url}/drive.mp4",
        webhook_url="https://hooks.example.com/x", webhook_events=["job.started", "job.failed"],
        **{"params": PARAMS, **changes},
    )  # fmt: skip
    return store.create(job)


def test_queued_job_past_its_deadline_fails_with_timeout_and_never_starts(
    store: HookedStore, deps: RunDeps, inputs_url: str
) -> None:
    job = submit(store, inputs_url, deadline_at=utc_now() - timedelta(seconds=1))
    run_job(job.id, deps)
    failed = store.get(job.id)
    assert failed.status is JobStatus.failed and failed.error is not None and failed.error.code == "timeout"
    assert store.stages == [] and not store.is_held(job.id)
    # The receiver hears that it failed, and never that it started.
    assert [d.type for d in Deliveries(store.db).for_job(job.id)] == ["job.failed"]


def test_running_job_past_its_deadline_stops_between_steps_and_the_worker_runs_the_next_job(
    store: HookedStore, deps: RunDeps, inputs_url: str, clock: Clock
) -> None:
    job = submit(store, inputs_url, deadline_at=utc_now() + timedelta(hours=1))

    def pass_the_deadline(job_id: str, progress: Any) -> None:
        if progress.stage is Stage.denoising:
            clock.offset = timedelta(hours=2)

    store.on_progress = pass_the_deadline
    run_job(job.id, deps)
    failed = store.get(job.id)
    assert failed.status is JobStatus.failed and failed.error is not None and failed.error.code == "timeout"
    assert failed.output is None and not store.is_held(job.id)
    assert Stage.decoding not in store.stages  # stopped in the denoising loop
    assert [d.type for d in Deliveries(store.db).for_job(job.id)] == ["job.started", "job.failed"]

    store.on_progress, clock.offset = (lambda job_id, progress: None), timedelta(0)
    following = submit(store, inputs_url, params=QUICK)
    run_job(following.id, deps)
    assert store.get(following.id).status is JobStatus.succeeded


def test_cancel_while_running_stops_within_seconds_and_the_same_worker_runs_the_next_job(
    store: HookedStore, deps: RunDeps, inputs_url: str
) -> None:
    job = submit(store, inputs_url)
    canceled_at: list[float] = []

    def cancel_mid_denoising(job_id: str, progress: Any) -> None:
        if progress.stage is Stage.denoising and not canceled_at:
            canceler = threading.Thread(target=store.transition, args=(job_id, JobStatus.canceled))
            canceler.start()
            canceler.join()  # as if POST /jobs/{id}/cancel came in from the gateway
            canceled_at.append(time.monotonic())

    store.on_progress = cancel_mid_denoising
    run_job(job.id, deps)
    stopped_after_s = time.monotonic() - canceled_at[0]
    canceled = store.get(job.id)
    assert canceled.status is JobStatus.canceled and canceled.output is None and not store.is_held(job.id)
    assert stopped_after_s < 10.0, f"the worker took {stopped_after_s:.1f} s to stop"  # a step takes < 1 s
    assert Stage.decoding not in store.stages

    store.on_progress = lambda job_id, progress: None
    following = submit(store, inputs_url, params=QUICK)
    run_job(following.id, deps)
    assert store.get(following.id).status is JobStatus.succeeded
