"""run_job in-process: real Redis, local storage, the tiny model, inputs from a loopback HTTP server."""

import threading
from pathlib import Path
from typing import Any

import pytest

from core.animate import Animator
from core.contract.records import Job, JobStatus, Stage
from core.execution.run import RunDeps, run_job
from core.jobs.store import JobStore
from core.settings import Settings
from core.storage import create_storage
from core.video.decode import read_video_frames
from tests.support.jobs import TINY_PARAMS, create_job
from tests.support.worker_settings import worker_settings

NUM_FRAMES, HEIGHT, WIDTH = 9, 192, 128  # TINY_PARAMS on the 17-frame drive.mp4


class RecordingStore(JobStore):
    """The real store, also remembering every progress write (and running a hook on each)."""

    def __init__(self, url: str) -> None:
        super().__init__(JobStore.from_url(url).db)
        self.progress: list[Any] = []
        self.on_progress = lambda job_id, progress: None

    def update_running(self, job_id: str, worker: str, **changes: Any) -> Job | None:
        if "progress" in changes:
            self.progress.append(changes["progress"])
            self.on_progress(job_id, changes["progress"])
        return super().update_running(job_id, worker, **changes)


@pytest.fixture
def store(redis_url: str) -> RecordingStore:
    return RecordingStore(redis_url)


@pytest.fixture
def job_settings(tmp_path: Path, tiny_model_dir: Path, redis_url: str) -> Settings:
    return worker_settings(tmp_path, redis_url, tiny_model_dir)


@pytest.fixture
def deps(store: RecordingStore, job_settings: Settings, animator: Animator) -> RunDeps:
    return RunDeps(
        store=store, storage=create_storage(job_settings), animator=lambda: animator, settings=job_settings,
        worker="test-worker@host",
    )  # fmt: skip


def scratch_entries(settings: Settings) -> list[Path]:
    return list((settings.data_dir / "scratch").iterdir())


def test_run_job_succeeds_with_output_keys_progress_and_timings(
    store: RecordingStore, deps: RunDeps, inputs_url: str
) -> None:
    job_id = create_job(store, inputs_url)
    run_job(job_id, deps)

    job = store.get(job_id)
    assert job.status is JobStatus.succeeded, job.error
    assert job.attempts == 1 and job.finished_at is not None
    assert job.output is not None
    prefix = f"jobs/{job_id}/attempt-1/"  # the first claim's own keys
    assert (job.output.video_key, job.output.pose_video_key) == (f"{prefix}output.mp4", f"{prefix}pose.mp4")
    output = job.output
    assert (output.num_frames, output.height, output.width, output.fps) == (NUM_FRAMES, HEIGHT, WIDTH, 8)
    assert job.output.duration_s == pytest.approx(NUM_FRAMES / 8)
    for key in (job.output.video_key, job.output.pose_video_key):
        video = read_video_frames(deps.storage.open_path(key), sample_stride=1)  # type: ignore[attr-defined]
        assert video.frames.shape == (NUM_FRAMES, HEIGHT, WIDTH, 3)
    assert set(job.timings) == {stage.value for stage in Stage}  # every stage, conditioning too, timed
    assert all(seconds >= 0 for seconds in job.timings.values())
    # Progress went through every stage in order, with a fraction that never went back.
    stages = list(dict.fromkeys(progress.stage for progress in store.progress))
    assert stages == list(Stage)
    fractions = [progress.fraction for progress in store.progress]
    assert fractions == sorted(fractions) and job.progress is not None and job.progress.fraction == 1.0
    assert scratch_entries(deps.settings) == []
    assert not store.is_held(job_id)


def test_redelivered_task_for_a_finished_job_does_nothing(
    store: RecordingStore, deps: RunDeps, inputs_url: str
) -> None:
    job_id = create_job(store, inputs_url)
    run_job(job_id, deps)
    finished = store.get(job_id)
    assert finished.status is JobStatus.succeeded
    output_path = deps.storage.open_path(finished.output.video_key)  # type: ignore[attr-defined,union-attr]
    mtime_ns = output_path.stat().st_mtime_ns
    num_writes = len(store.progress)

    run_job(job_id, deps)

    assert store.get(job_id) == finished
    assert len(store.progress) == num_writes
    assert output_path.stat().st_mtime_ns == mtime_ns


def test_job_held_by_a_live_worker_is_left_alone(store: RecordingStore, deps: RunDeps, inputs_url: str) -> None:
    job_id = create_job(store, inputs_url)
    held = store.claim(job_id, "other@host", lease_s=60)
    assert held is not None

    run_job(job_id, deps)

    job = store.get(job_id)
    assert (job.status, job.worker, job.attempts) == (JobStatus.running, "other@host", 1)
    assert store.progress == []


def test_cancel_during_denoising_stops_the_job_without_output(
    store: RecordingStore, deps: RunDeps, inputs_url: str
) -> None:
    job_id = create_job(store, inputs_url)

    def cancel_from_another_thread(progress_job_id: str, progress: Any) -> None:
        if progress.stage is Stage.denoising and store.get(progress_job_id).status is JobStatus.running:
            canceler = threading.Thread(target=store.transition, args=(progress_job_id, JobStatus.canceled))
            canceler.start()
            canceler.join()

    store.on_progress = cancel_from_another_thread
    run_job(job_id, deps)

    job = store.get(job_id)
    assert job.status is JobStatus.canceled
    assert job.output is None and job.error is None
    assert Stage.encoding not in {progress.stage for progress in store.progress}
    assert list(deps.settings.data_dir.rglob(f"*{job_id}*")) == []  # no output, no scratch left
    assert scratch_entries(deps.settings) == []


def test_bad_video_fails_the_job_and_the_worker_keeps_going(
    store: RecordingStore, deps: RunDeps, inputs_url: str
) -> None:
    bad_id = create_job(store, inputs_url, video="garbage.mp4")
    run_job(bad_id, deps)
    good_id = create_job(store, inputs_url)
    run_job(good_id, deps)

    bad = store.get(bad_id)
    assert bad.status is JobStatus.failed and bad.error is not None
    assert bad.error.code == "input_not_video"
    assert "garbage.mp4" in bad.error.message or "video" in bad.error.message
    assert store.get(good_id).status is JobStatus.succeeded
    assert scratch_entries(deps.settings) == []


def test_loopback_input_is_refused_without_an_allow_list(store: RecordingStore, deps: RunDeps, inputs_url: str) -> None:
    deps.settings = deps.settings.model_copy(update={"fetch_allowed_networks": []})
    job_id = create_job(store, inputs_url)
    run_job(job_id, deps)

    job = store.get(job_id)
    assert job.status is JobStatus.failed and job.error is not None
    assert job.error.code == "forbidden_address"
    assert "127.0.0.1" in job.error.message


def test_unexpected_error_is_recorded_as_internal_error_without_the_traceback(
    store: RecordingStore, deps: RunDeps, inputs_url: str
) -> None:
    def broken_animator() -> Animator:
        raise RuntimeError("secret detail from deep inside")

    deps.animator = broken_animator
    job_id = create_job(store, inputs_url)
    run_job(job_id, deps)

    job = store.get(job_id)
    assert job.status is JobStatus.failed and job.error is not None
    assert job.error.code == "internal_error"
    assert "secret detail" not in job.error.message
    assert scratch_entries(deps.settings) == []


def test_unknown_job_id_is_dropped_quietly(deps: RunDeps) -> None:
    run_job("no-such-job", deps)


def test_live_previews_and_the_early_pose_video_change_nothing_in_the_result(
    store: RecordingStore, job_settings: Settings, animator: Animator, inputs_url: str
) -> None:
    """Previews every 2 of 10 steps: each stored preview is a WebP named in the record while the job runs; the
    pose video is the one stored early; none of it is left afterwards, and the result equals a run without."""
    storage = create_storage(job_settings)
    seen: dict[str, list[Any]] = {"preview": [], "pose": []}
    record_changes = store.update_running

    def recording(job_id: str, worker: str, **changes: Any) -> Job | None:
        if "preview_key" in changes:
            seen["preview"].append(storage.open_path(changes["preview_key"]).read_bytes()[:12])  # type: ignore[attr-defined]
        if "pose_video_key" in changes:
            seen["pose"].append(changes["pose_video_key"])
        return record_changes(job_id, worker, **changes)

    store.update_running = recording  # type: ignore[method-assign]
    params = {**TINY_PARAMS.model_dump(), "num_inference_steps": 10}
    outputs = []
    for fraction in (0.2, 0.0):
        settings = job_settings.model_copy(update={"preview_interval_fraction": fraction})
        deps = RunDeps(store=store, storage=storage, animator=lambda: animator, settings=settings, worker="w@h")
        job_id = create_job(store, inputs_url, params=params)
        run_job(job_id, deps)
        job = store.get(job_id)
        assert job.status is JobStatus.succeeded and job.output is not None, job.error
        outputs.append(job.output)
        assert sorted(path.name for path in (storage.root / "jobs" / job_id).rglob("*") if path.is_file()) == [
            "output.mp4", "pose.mp4",
        ]  # fmt: skip
        assert seen["pose"][-1] == job.output.pose_video_key  # stored once, early, and kept as the result's

    with_previews, without = outputs
    assert seen["preview"] and all(head[:4] == b"RIFF" and head[8:12] == b"WEBP" for head in seen["preview"])
    assert len(seen["preview"]) <= 4  # steps 2, 4, 6, 8 at most (one still uploading makes the next skipped)
    assert with_previews.sha256 == without.sha256  # the same video, byte for byte
