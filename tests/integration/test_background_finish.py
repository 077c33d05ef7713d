"""Background finishing: run_job returns once a job's frames are decoded; encoding, upload and the
final write follow on the worker's finisher thread while the next job runs. Real Redis, real local
storage (behind a gate the test opens), the tiny model, inputs over loopback HTTP.
"""

import logging
import socket
import threading
from pathlib import Path

import pytest

from core.animate import Animator
from core.contract.records import JobStatus, Stage
from core.execution.run import RunDeps, run_job
from core.jobs.store import JobStore
from core.settings import Settings
from core.storage import S3Storage, Storage, StoredObject, create_storage
from tests.support.jobs import create_job
from tests.support.processes import wait_for
from tests.support.worker_settings import worker_settings
from worker.finisher import BackgroundFinisher


class GatedStorage:
    """The real local storage, whose uploads wait until the test opens the gate; remembers the keys in order."""

    def __init__(self, storage: Storage) -> None:
        self.storage, self.gate, self.keys = storage, threading.Event(), list[str]()

    def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        assert self.gate.wait(timeout=120), "the test never opened the upload gate"
        self.keys.append(key)
        return self.storage.put_file(key, path, content_type)

    def __getattr__(self, name: str) -> object:  # url_for, exists, check, delete, open_path: the real ones
        return getattr(self.storage, name)


@pytest.fixture
def settings(tmp_path: Path, tiny_model_dir: Path, redis_url: str) -> Settings:
    return worker_settings(tmp_path, redis_url, tiny_model_dir, upload_attempts=2, upload_backoff_s=0.01)


@pytest.fixture
def finisher() -> BackgroundFinisher:
    return BackgroundFinisher()


@pytest.fixture
def ended() -> list[tuple[str, JobStatus]]:
    """(job id, status) at each on_job_end call."""
    return []


def _deps(
    settings: Settings, animator: Animator, storage: Storage, finisher: BackgroundFinisher, ended: list
) -> RunDeps:
    store = JobStore.from_url(settings.redis_url)
    return RunDeps(
        store=store, storage=storage, animator=lambda: animator, settings=settings, worker="test-worker@host",
        finisher=finisher, on_job_end=lambda job_id, seconds: ended.append((job_id, store.get(job_id).status)),
    )  # fmt: skip


def _run_in_thread(job_id: str, deps: RunDeps) -> threading.Thread:
    thread = threading.Thread(target=run_job, args=(job_id, deps), daemon=True)
    thread.start()
    return thread


def test_run_job_returns_before_the_upload_and_the_job_succeeds_after_it(
    settings: Settings, animator: Animator, inputs_url: str, finisher: BackgroundFinisher,
    ended: list,
) -> None:
    storage = GatedStorage(create_storage(settings))
    deps = _deps(settings, animator, storage, finisher, ended)
    job_id = create_job(deps.store, inputs_url)

    # Inline finishing would block on the closed gate: the join times out and the test fails.
    task = _run_in_thread(job_id, deps)
    task.join(timeout=120)
    assert not task.is_alive(), "run_job waited for the upload"

    job = deps.store.get(job_id)
    assert job.status is JobStatus.running and job.output is None
    assert deps.store.is_held(job_id)  # the lease is still renewed while the result is stored
    assert ended == []

    storage.gate.set()
    assert finisher.drain(timeout_s=120)
    job = deps.store.get(job_id)
    assert job.status is JobStatus.succeeded, job.error
    assert job.output is not None and storage.exists(job.output.video_key) and storage.exists(job.output.pose_video_key)
    assert job.progress is not None and job.progress.stage is Stage.uploading and job.progress.fraction == 1.0
    assert {"encoding", "uploading", "denoising"} <= set(job.timings)
    assert not deps.store.is_held(job_id)
    assert list((settings.data_dir / "scratch").iterdir()) == []  # the scratch files lived until the upload
    assert ended == [(job_id, JobStatus.succeeded)]


def test_the_next_job_waits_while_the_previous_result_is_still_being_stored(
    settings: Settings,
    animator: Animator,
    inputs_url: str,
    finisher: BackgroundFinisher,
    ended: list,
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = GatedStorage(create_storage(settings))
    deps = _deps(settings, animator, storage, finisher, ended)
    first, second = create_job(deps.store, inputs_url), create_job(deps.store, inputs_url)
    with caplog.at_level(logging.INFO, logger="worker.finisher"):
        run_job(first, deps)  # returns with `first` encoding or waiting on the gate
        task = _run_in_thread(second, deps)
        waiting = f"job {second}: waiting for job {first}'s results to be stored"
        wait_for(lambda: waiting in caplog.messages, timeout_s=120, message="the second job to wait")
        # One result at a time: `second` is decoded but cannot start storing before `first` is done.
        assert [deps.store.get(job_id).status for job_id in (first, second)] == [JobStatus.running] * 2
        storage.gate.set()
        task.join(timeout=120)
        assert finisher.drain(timeout_s=120)

    assert [deps.store.get(job_id).status for job_id in (first, second)] == [JobStatus.succeeded] * 2
    # One result at a time: the first job's video is stored before the second's. (Pose videos are stored as
    # soon as each job's poses exist, and live previews while it denoises, so they come in between.)
    outputs = [key for key in storage.keys if key.endswith("/output.mp4")]
    assert outputs == [f"jobs/{job_id}/attempt-1/output.mp4" for job_id in (first, second)]
    poses = {key for key in storage.keys if key.endswith("/pose.mp4")}
    assert poses == {f"jobs/{job_id}/attempt-1/pose.mp4" for job_id in (first, second)}
    assert ended == [(first, JobStatus.succeeded), (second, JobStatus.succeeded)]


def test_a_storage_failure_while_finishing_in_the_background_fails_the_job_as_storage_error(
    settings: Settings, animator: Animator, inputs_url: str, finisher: BackgroundFinisher,
    ended: list,
) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    storage = S3Storage(settings.model_copy(update={"s3_endpoint_url": endpoint, "s3_bucket": "results"}))
    deps = _deps(settings, animator, storage, finisher, ended)
    job_id = create_job(deps.store, inputs_url)

    run_job(job_id, deps)
    assert finisher.drain(timeout_s=120)

    job = deps.store.get(job_id)
    assert job.status is JobStatus.failed and job.error is not None, job
    assert job.error.code == "storage_error"
    assert job.output is None and not deps.store.is_held(job_id)
    assert list((settings.data_dir / "scratch").iterdir()) == []
    assert ended == [(job_id, JobStatus.failed)]


def test_a_job_that_fails_before_its_frames_are_ready_ends_in_the_task_itself(
    settings: Settings, animator: Animator, inputs_url: str, finisher: BackgroundFinisher,
    ended: list,
) -> None:
    deps = _deps(settings, animator, create_storage(settings), finisher, ended)
    job_id = create_job(deps.store, inputs_url, video="garbage.mp4")

    run_job(job_id, deps)  # no drain: nothing was handed to the finisher

    failed = deps.store.get(job_id)
    assert failed.status is JobStatus.failed and failed.error is not None
    assert failed.error.code == "input_not_video"
    assert ended == [(job_id, JobStatus.failed)]
