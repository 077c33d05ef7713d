"""A worker that lost its job during the upload never touches the files of the worker that took it over.

Each claim uploads under its own attempt's keys (``jobs/{id}/attempt-{n}/``), so a stale worker's late
puts and its all-or-nothing clean-up reach only its own files. Real Redis, real local storage behind a
gate the test holds, the tiny model, inputs over loopback HTTP.
"""

import threading
from pathlib import Path

import pytest

from core.animate import Animator
from core.contract.records import JobStatus
from core.errors import StorageError
from core.execution.run import RunDeps, run_job
from core.jobs.store import JobStore
from core.settings import Settings
from core.storage import Storage, StoredObject, create_storage
from tests.support.jobs import create_job
from tests.support.worker_settings import worker_settings


class StalledThenBrokenStorage:
    """The real storage, but the result video's first put waits for the test's gate and then fails, as every
    later one does, as an outage would. Other files (the pose video, stored early) are stored."""

    def __init__(self, storage: Storage) -> None:
        self.storage, self.entered, self.gate = storage, threading.Event(), threading.Event()
        self.video_puts = 0

    def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        if not key.endswith("/output.mp4"):
            return self.storage.put_file(key, path, content_type)
        self.video_puts += 1
        if self.video_puts == 1:
            self.entered.set()
            assert self.gate.wait(timeout=120), "the test never opened the upload gate"
        raise StorageError("the storage is unavailable")

    def __getattr__(self, name: str) -> object:  # url_for, exists, check, delete: the real ones
        return getattr(self.storage, name)


@pytest.fixture
def settings(tmp_path: Path, tiny_model_dir: Path, redis_url: str) -> Settings:
    return worker_settings(tmp_path, redis_url, tiny_model_dir, upload_attempts=2, upload_backoff_s=0.01)


def test_stale_worker_whose_upload_fails_after_a_takeover_leaves_the_survivors_files(
    settings: Settings, animator: Animator, inputs_url: str
) -> None:
    storage = create_storage(settings)
    store = JobStore.from_url(settings.redis_url)
    stalled = StalledThenBrokenStorage(storage)
    stale = RunDeps(store=store, storage=stalled, animator=lambda: animator, settings=settings, worker="stale@a")
    survivor = RunDeps(store=store, storage=storage, animator=lambda: animator, settings=settings, worker="new@b")
    job_id = create_job(store, inputs_url)

    # The stale worker reaches the upload of its result and stalls there, as a frozen process would (its pose
    # video was stored when its poses were drawn).
    stale_run = threading.Thread(target=run_job, args=(job_id, stale), daemon=True)
    stale_run.start()
    assert stalled.entered.wait(timeout=120), "the first worker never started its upload"
    # Its lease lapses (as it does once a frozen worker stops renewing); the reaper hands the job back
    # and another worker runs it to the end.
    store.db.client.delete(store.db.keys.lease(job_id))
    assert store.reap_lapsed(job_id, max_attempts=3) is not None
    run_job(job_id, survivor)
    done = store.get(job_id)
    assert done.status is JobStatus.succeeded and done.attempts == 2 and done.output is not None

    # The stale worker wakes up: its result's puts fail, and it removes what it stored (its pose video).
    stalled.gate.set()
    stale_run.join(timeout=120)
    assert not stale_run.is_alive()
    assert stalled.video_puts == 2  # both tries of the result video
    assert not storage.exists(f"jobs/{job_id}/attempt-1/pose.mp4")  # its own pose video, removed

    after = store.get(job_id)
    assert after.status is JobStatus.succeeded and after.error is None and after.output == done.output
    for key in (done.output.video_key, done.output.pose_video_key):
        assert storage.exists(key), f"the stale worker removed the survivor's {key}"
    assert done.output.video_key.startswith(f"jobs/{job_id}/attempt-2/")
