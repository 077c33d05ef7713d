"""ProgressReporter on real Redis: throttled writes, throttled job.progress webhooks, the deadline, a lost job."""

import uuid
from datetime import timedelta
from typing import Any

import pytest

from core.contract.params import JobParams
from core.contract.records import Job, JobStatus, utc_now
from core.contract.stages import Stage
from core.errors import JobCanceledError, JobTimeoutError
from core.execution.events import JobEvents
from core.execution.progress import ProgressReporter
from core.jobs.deliveries import Deliveries
from core.jobs.store import JobStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _running_job(store: JobStore, **fields: Any) -> Job:
    job = Job(
        id=uuid.uuid4().hex, owner="o", image_url="http://x/i.png", video_url="http://x/v.mp4", params=JobParams(),
        webhook_url="https://hooks.example.com/x", webhook_events=["job.progress"], **fields,
    )  # fmt: skip
    store.create(job)
    claimed = store.claim(job.id, "w1", lease_s=30)
    assert claimed is not None
    return claimed


def _reporter(store: JobStore, job: Job, clock: FakeClock, wall_offset: timedelta = timedelta(0)) -> ProgressReporter:
    return ProgressReporter(
        job, store, "w1", JobEvents(Deliveries(store.db)), clock=clock, wall_clock=lambda: utc_now() + wall_offset,
        min_interval_s=0.25, webhook_interval_s=5.0, webhook_min_fraction=0.1,
    )  # fmt: skip


def test_reporter_throttles_progress_writes_and_progress_webhooks(redis_url: str) -> None:
    store, clock = JobStore.from_url(redis_url), FakeClock()
    job = _running_job(store)
    reporter = _reporter(store, job, clock)
    deliveries = Deliveries(store.db)

    def written() -> tuple[Stage, int, float]:
        progress = store.get(job.id).progress
        assert progress is not None
        return progress.stage, progress.step, progress.fraction

    reporter.start(Stage.fetching)
    assert written() == (Stage.fetching, 0, 0.0)
    clock.now = 0.1
    reporter.report(Stage.denoising, 1, 10)
    assert written() == (Stage.fetching, 0, 0.0)  # 0.1 s after the last write: not written
    reporter.report(Stage.denoising, 1, 10, force=True)
    assert written() == (Stage.denoising, 1, 0.22)
    clock.now = 0.4
    reporter.report(Stage.denoising, 2, 10)
    assert written() == (Stage.denoising, 2, 0.29)
    # job.progress webhooks: the first write that grew the fraction by 0.1, then none for 5 s.
    assert [d.job.progress.fraction for d in deliveries.for_job(job.id) if d.job.progress] == [0.22]
    clock.now = 3.0
    reporter.report(Stage.denoising, 9, 10)
    assert written() == (Stage.denoising, 9, 0.78) and len(deliveries.for_job(job.id)) == 1
    clock.now = 6.0
    reporter.start(Stage.decoding)
    assert [d.job.progress.fraction for d in deliveries.for_job(job.id) if d.job.progress] == [0.22, 0.85]


def test_reporter_raises_timeout_past_the_deadline_and_canceled_once_the_job_is_not_ours(redis_url: str) -> None:
    store, clock = JobStore.from_url(redis_url), FakeClock()
    job = _running_job(store, deadline_at=utc_now() + timedelta(hours=1))
    _reporter(store, job, clock).start(Stage.pose)  # before the deadline: written
    with pytest.raises(JobTimeoutError, match="did not finish by its deadline"):
        _reporter(store, job, clock, wall_offset=timedelta(hours=2)).start(Stage.pose)

    store.transition(job.id, JobStatus.canceled)
    with pytest.raises(JobCanceledError, match=f"job {job.id} was canceled or taken over"):
        _reporter(store, job, clock).start(Stage.denoising)
