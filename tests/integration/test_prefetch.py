"""Prefetch: the next queued job's inputs and poses are prepared while one job denoises, and used only by it."""

import logging
from pathlib import Path

import pytest

from core.animate import Animator
from core.contract.records import JobStatus
from core.execution.run import RunDeps, run_job
from core.jobs.store import JobStore
from core.settings import Settings
from core.storage import create_storage
from tests.support.jobs import create_job
from tests.support.worker_settings import worker_settings
from worker.prefetch import Prefetcher


@pytest.fixture
def settings(tmp_path: Path, tiny_model_dir: Path, redis_url: str) -> Settings:
    return worker_settings(tmp_path, redis_url, tiny_model_dir)


def _deps(settings: Settings, animator: Animator, prefetch: Prefetcher | None) -> RunDeps:
    return RunDeps(
        store=JobStore.from_url(settings.redis_url), storage=create_storage(settings), animator=lambda: animator,
        settings=settings, worker="test-worker@host", prefetch=prefetch,
    )  # fmt: skip


def test_next_job_runs_on_inputs_prepared_during_the_previous_one_with_the_same_output(
    settings: Settings, animator: Animator, inputs_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = JobStore.from_url(settings.redis_url)
    prefetch = Prefetcher(store, create_storage(settings), settings, animator, ["gpu"])
    deps = _deps(settings, animator, prefetch)
    first, second = create_job(store, inputs_url), create_job(store, inputs_url)
    with caplog.at_level(logging.INFO, logger="worker.prefetch"):
        run_job(first, deps)  # its first step starts preparing `second`
        run_job(second, deps)  # takes it (waiting for the thread if it is still at work)
    assert f"job {second}: inputs and poses were prepared ahead" in caplog.messages
    # The same job without prefetch gives the same bytes: prepared inputs are the job's own.
    plain = create_job(store, inputs_url)
    run_job(plain, _deps(settings, animator, None))
    jobs = [store.get(job_id) for job_id in (first, second, plain)]
    assert all(job.status is JobStatus.succeeded for job in jobs), [job.error for job in jobs]
    assert jobs[1].output is not None and jobs[2].output is not None
    assert jobs[1].output.sha256 == jobs[2].output.sha256


def test_prepared_inputs_go_only_to_their_own_job_and_other_queues_are_skipped(
    settings: Settings, animator: Animator, inputs_url: str
) -> None:
    store = JobStore.from_url(settings.redis_url)
    prefetch = Prefetcher(store, create_storage(settings), settings, animator, ["gpu"])
    other_queue = create_job(store, inputs_url, queue="gpu-80g")
    current, queued = create_job(store, inputs_url), create_job(store, inputs_url)
    prefetch.prepare_next(current)
    assert prefetch._thread is not None
    prefetch._thread.join(timeout=60)
    assert prefetch.take(other_queue) is None  # and the entry for `queued` is dropped with it
    assert prefetch.take(queued) is None
    prefetch.prepare_next(current)
    prefetch._thread.join(timeout=60)
    prepared = prefetch.take(queued)
    assert prepared is not None and prepared.job_id == queued
    assert prepared.poses.posed.pose_frames.shape[0] == prepared.video.frames.shape[0] + 1
    assert store.get(queued).status is JobStatus.queued  # preparing claims nothing
