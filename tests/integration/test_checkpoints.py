"""Denoising checkpoints: resume gives the very same frames; a checkpoint of another job, or a broken one, is
never used; checkpoint storage faults never fail a job; a job's checkpoints go when it ends.

The pipeline tests run the tiny model on CPU in float32; the run_job tests run it in-process with real Redis
and local storage (tests/integration/test_run_job.py). A graceful stop (``must_stop``) makes the checkpoint at a
known step and hands the job back, as SIGTERM past the grace does; tests/e2e/test_checkpoint_resume.py kills a
worker process instead.
"""

import shutil
import tarfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from core.animate import Animator, prepare_poses
from core.contract.params import JobParams
from core.contract.records import JobStatus
from core.errors import StorageError
from core.execution.checkpoints import DenoisingCheckpoints, denoise_checkpoint_key
from core.execution.outcome import WorkerStoppingError
from core.execution.result_checkpoint import result_checkpoint_key
from core.execution.run import RunDeps, run_job
from core.jobs.store import JobStore
from core.settings import Settings
from core.storage import LocalStorage, Storage, StoredObject, create_storage
from core.video.decode import read_image, read_video_frames
from tests.support.input_files import input_server, write_inputs
from tests.support.jobs import TINY_PARAMS, create_job
from tests.support.media import write_image
from tests.support.pipeline_args import DECODE_CHUNK_SIZE
from tests.support.worker_settings import worker_settings

STEPS = 6
# The quickest real job (the 3-frame drive.mp4 of short_inputs_url), with tiles that overlap and guidance
PARAMS = TINY_PARAMS.model_copy(update={"num_inference_steps": STEPS, "tile_size": 2, "tile_overlap": 1,
                                        "sample_stride": 1})  # fmt: skip
STOP_AT = 3  # the graceful stop comes after this step


@pytest.fixture(scope="module")
def posed(animator: Animator, tmp_path_factory: pytest.TempPathFactory) -> Any:
    directory = write_inputs(tmp_path_factory.mktemp("ckpt-inputs"), num_frames=3)
    image = read_image(directory / "person.png")
    video = read_video_frames(directory / "drive.mp4", sample_stride=1)
    return prepare_poses(image, video.frames, PARAMS, animator.estimator)


def _state(animator: Animator, posed: Any) -> Any:
    return animator.pipeline.prepare_denoising(
        posed.reference_image, posed.pose_frames, seed=7, num_inference_steps=STEPS, guidance_scale=2.0,
        noise_aug_strength=0.02, tile_size=2, tile_overlap=1, sigma_schedule="karras",
    )  # fmt: skip


class _Stop(Exception):
    pass


def test_resumed_denoising_decodes_to_the_very_frames_of_an_uninterrupted_run(
    animator: Animator, posed: Any, tmp_path: Path, settings: Settings
) -> None:
    """Denoise to step 5, checkpoint through storage, resume in a fresh state: frames equal bit for bit."""
    pipeline = animator.pipeline
    uninterrupted = pipeline.decode(pipeline.denoise(_state(animator, posed)), decode_chunk_size=DECODE_CHUNK_SIZE)

    storage = LocalStorage(settings)
    writer = DenoisingCheckpoints(storage, "job", "fp", tmp_path, interval_s=float("inf"))

    def stop_after(step: int, total: int) -> None:
        if step == STOP_AT:
            writer.save_now()
            raise _Stop

    with pytest.raises(_Stop):
        pipeline.denoise(_state(animator, posed), on_latents=writer.on_latents, on_step=stop_after)
    assert writer.written_steps == [STOP_AT]

    fresh = _state(animator, posed)
    reader = DenoisingCheckpoints(storage, "job", "fp", tmp_path, interval_s=float("inf"))
    resume = reader.load(fresh.latents.shape, STEPS)
    assert resume is not None and resume[0] == STOP_AT
    steps_run: list[int] = []
    latents = pipeline.denoise(fresh, resume=resume, on_step=lambda step, total: steps_run.append(step))
    resumed = pipeline.decode(latents, decode_chunk_size=DECODE_CHUNK_SIZE)

    assert steps_run == list(range(STOP_AT + 1, STEPS + 1))  # only the steps left
    assert np.array_equal(resumed, uninterrupted)
    # Not trivially equal: the same latents run from the wrong step (the scheduler's own index) differ.
    wrong = pipeline.denoise(_state(animator, posed), resume=(STOP_AT - 1, resume[1]))
    assert not np.array_equal(pipeline.decode(wrong, decode_chunk_size=DECODE_CHUNK_SIZE), uninterrupted)


# run_job in-process -------------------------------------------------------------------------------------------


class FaultyStorage:
    """Local storage whose checkpoint reads and/or writes fail as a storage outage does; the rest works."""

    def __init__(self, storage: Storage, *, reads: bool = False, writes: bool = False) -> None:
        self.storage, self.reads, self.writes = storage, reads, writes
        self.refused: list[str] = []

    def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        if self.writes and "/checkpoint/" in key:
            self.refused.append(key)
            raise StorageError(f"storing {key}: connection refused")
        return self.storage.put_file(key, path, content_type)

    def get_file(self, key: str, dest: Path) -> str:
        if self.reads and "/checkpoint/" in key:
            self.refused.append(key)
            raise StorageError(f"reading {key}: connection refused")
        return self.storage.get_file(key, dest)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)


@pytest.fixture
def store(redis_url: str) -> JobStore:
    return JobStore.from_url(redis_url)


@pytest.fixture
def job_settings(tmp_path: Path, tiny_model_dir: Path, redis_url: str) -> Settings:
    # Checkpoints only at a graceful stop unless a test asks for an interval: the step of each is known.
    return worker_settings(tmp_path, redis_url, tiny_model_dir, checkpoint_interval_s=3600, prefetch=False)


@pytest.fixture
def make_deps(store: JobStore, job_settings: Settings, animator: Animator) -> Callable[..., RunDeps]:
    """RunDeps for one run; ``stop_at``: SIGTERM past the grace, seen after that step of this attempt."""

    def make(*, stop_at: int | None = None, storage: Storage | None = None, **fields: Any) -> RunDeps:
        deps = RunDeps(**{
            "store": store, "storage": storage or create_storage(job_settings), "animator": lambda: animator,
            "settings": job_settings, "worker": "w@host", "min_progress_interval_s": 0, **fields,
        })  # fmt: skip
        if stop_at is not None:
            steps_seen = iter(range(1, 1000))  # must_stop is asked once after every step
            deps.must_stop = lambda: next(steps_seen) >= stop_at
        return deps

    return make


def _handed_back_at(store: JobStore, make_deps: Callable[..., RunDeps], job_id: str, **fields: Any) -> None:
    """Run ``job_id`` until the graceful stop after step STOP_AT: it is queued again, its checkpoint stored."""
    run_job(job_id, make_deps(stop_at=STOP_AT, **fields))
    assert store.get(job_id).status is JobStatus.queued


def _output_sha(store: JobStore, job_id: str) -> str:
    job = store.get(job_id)
    assert job.status is JobStatus.succeeded and job.output is not None, job.error
    return job.output.sha256


def _checkpoint_path(settings: Settings, job_id: str) -> Path:
    return settings.data_dir / "results" / denoise_checkpoint_key(job_id)


@pytest.fixture(scope="module")
def reference_sha(redis_server_url: str, tiny_model_dir: Path, animator: Animator, short_inputs_url: str,
                  tmp_path_factory: pytest.TempPathFactory) -> str:  # fmt: skip
    """The output sha256 of an uninterrupted run of PARAMS (checkpoints off)."""
    store = JobStore.from_url(redis_server_url)
    settings = worker_settings(tmp_path_factory.mktemp("reference"), redis_server_url, tiny_model_dir,
                               checkpoint_interval_s=0)  # fmt: skip
    deps = RunDeps(store=store, storage=create_storage(settings), animator=lambda: animator, settings=settings,
                   worker="ref@host")  # fmt: skip
    job_id = create_job(store, short_inputs_url, params=PARAMS)
    run_job(job_id, deps)
    return _output_sha(store, job_id)


def test_a_job_stopped_gracefully_resumes_from_its_checkpoint_with_the_same_output(
    store: JobStore, make_deps: Callable[..., RunDeps], job_settings: Settings, short_inputs_url: str,
    reference_sha: str,
) -> None:
    job_id = create_job(store, short_inputs_url, params=PARAMS)
    _handed_back_at(store, make_deps, job_id)
    assert _checkpoint_path(job_settings, job_id).is_file()  # kept for the next attempt
    assert store.get(job_id).resumed_from_step is None

    steps: list[int] = []
    deps = make_deps()
    original = store.update_running

    def recording(jid: str, worker: str, **changes: Any) -> Any:
        if "progress" in changes and changes["progress"].stage.value == "denoising":
            steps.append(changes["progress"].step)
        return original(jid, worker, **changes)

    store.update_running = recording  # type: ignore[method-assign]
    run_job(job_id, deps)

    job = store.get(job_id)
    assert (job.attempts, job.resumed_from_step) == (2, STOP_AT)
    assert min(steps) == STOP_AT + 1  # no step before the checkpoint ran again
    assert _output_sha(store, job_id) == reference_sha
    assert not (job_settings.data_dir / "results" / "jobs" / job_id / "checkpoint").exists()  # deleted at the end


@pytest.mark.parametrize("other", ["params", "model file", "input bytes"])
def test_a_checkpoint_of_another_job_is_not_used(
    other: str, store: JobStore, make_deps: Callable[..., RunDeps], job_settings: Settings, short_inputs_url: str,
    reference_sha: str, tmp_path: Path,
) -> None:  # fmt: skip
    """A checkpoint of the same shape but another fingerprint is ignored: the job starts over."""
    stack = ExitStack()
    source_id = create_job(store, short_inputs_url, params=PARAMS)
    _handed_back_at(store, make_deps, source_id)
    deps = make_deps()
    if other == "params":
        job_id = create_job(store, short_inputs_url, params=PARAMS.model_copy(update={"guidance_scale": 2.5}))
    elif other == "model file":
        job_id = create_job(store, short_inputs_url, params=PARAMS)
        deps.model_files_sha256 = lambda: {"MimicMotion_1-1.pth": "0" * 64}
    else:  # the same image but for one pixel, served from another folder
        directory = write_inputs(tmp_path, num_frames=3)
        image = read_image(directory / "person.png")
        image[0, 0] ^= 1
        write_image(directory / "person.png", image)
        served = stack.enter_context(input_server(directory))
        job_id = create_job(store, served.url, params=PARAMS)
    target = _checkpoint_path(job_settings, job_id)
    target.parent.mkdir(parents=True)
    shutil.copy(_checkpoint_path(job_settings, source_id), target)

    with stack:
        run_job(job_id, deps)

    job = store.get(job_id)
    assert job.status is JobStatus.succeeded, job.error
    assert job.resumed_from_step is None
    if other == "model file":  # the same job otherwise: the same output, from step 0
        assert _output_sha(store, job_id) == reference_sha


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "not a checkpoint"])
def test_a_damaged_checkpoint_is_not_used(
    damage: str, store: JobStore, make_deps: Callable[..., RunDeps], job_settings: Settings, short_inputs_url: str,
    reference_sha: str,
) -> None:  # fmt: skip
    job_id = create_job(store, short_inputs_url, params=PARAMS)
    _handed_back_at(store, make_deps, job_id)
    path = _checkpoint_path(job_settings, job_id)
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "corrupt":  # one byte of the latents flipped: the zip still reads, the tensor loads
        saved = torch.load(path, weights_only=True)
        raw = saved["latents"].contiguous().view(torch.uint8).numpy().tobytes()
        offset = bytes(data).find(raw[:64])
        assert offset > 0
        data[offset + 100] ^= 0xFF
    else:
        data = bytearray(b"PK\x03\x04 nothing a checkpoint would hold")
    path.write_bytes(bytes(data))

    run_job(job_id, make_deps())

    job = store.get(job_id)
    assert job.resumed_from_step is None
    assert _output_sha(store, job_id) == reference_sha


def test_storage_down_while_checkpointing_never_fails_the_job(
    store: JobStore, make_deps: Callable[..., RunDeps], job_settings: Settings, short_inputs_url: str,
    reference_sha: str,
) -> None:
    """Checkpoint writes refused every step, and at the graceful stop; then the read refused: the job is handed
    back, then runs from step 0 to the same output."""
    faulty = FaultyStorage(create_storage(job_settings), reads=True, writes=True)
    settings = job_settings.model_copy(update={"checkpoint_interval_s": 1e-6})  # a write due after every step
    job_id = create_job(store, short_inputs_url, params=PARAMS)
    deps = make_deps(stop_at=STOP_AT, storage=faulty)
    deps.settings = settings
    run_job(job_id, deps)
    assert store.get(job_id).status is JobStatus.queued
    assert any(key.endswith("denoise.pt") for key in faulty.refused)

    # A checkpoint is stored, but reading it fails: the job starts over.
    _handed_back_at(store, make_deps, job_id)
    faulty.refused.clear()
    deps = make_deps(storage=faulty)
    deps.settings = settings
    run_job(job_id, deps)

    job = store.get(job_id)
    assert job.resumed_from_step is None
    assert _output_sha(store, job_id) == reference_sha
    assert len(faulty.refused) >= 2  # the read, and writes while it denoised


def test_checkpoints_every_interval_and_gone_once_the_job_is_canceled(
    store: JobStore, make_deps: Callable[..., RunDeps], job_settings: Settings, short_inputs_url: str,
    reference_sha: str,
) -> None:  # fmt: skip
    """With an interval of ~0, checkpoints are written while denoising (on the helper thread) and the output is
    unchanged; a job canceled while handed back leaves no checkpoint once a worker sees it ended."""
    settings = job_settings.model_copy(update={"checkpoint_interval_s": 1e-6})
    job_id = create_job(store, short_inputs_url, params=PARAMS)
    stats: list[Any] = []
    deps = make_deps(on_checkpoints=stats.append)
    deps.settings = settings
    run_job(job_id, deps)
    assert _output_sha(store, job_id) == reference_sha
    assert stats and stats[0].written >= 1 and stats[0].bytes_written > 0 and stats[0].failed == 0
    assert not (job_settings.data_dir / "results" / "jobs" / job_id / "checkpoint").exists()

    canceled_id = create_job(store, short_inputs_url, params=PARAMS)
    _handed_back_at(store, make_deps, canceled_id)
    assert _checkpoint_path(job_settings, canceled_id).is_file()
    cancels = iter([lambda: store.transition(canceled_id, JobStatus.canceled)])

    def cancel_once() -> bool:  # canceled while running: this step's progress write finds it no longer ours
        next(cancels, lambda: None)()
        return False

    deps = make_deps()
    deps.must_stop = cancel_once
    run_job(canceled_id, deps)
    assert store.get(canceled_id).status is JobStatus.canceled
    assert not _checkpoint_path(job_settings, canceled_id).exists()


def test_the_fingerprint_covers_the_seed() -> None:
    from core.execution.checkpoints import job_fingerprint

    def fingerprint(params: JobParams) -> str:
        return job_fingerprint(params, model_files={"m": "1"}, inputs={"i": "2"}, dtype="torch.float32",
                               decode_chunk_size=8)  # fmt: skip

    assert fingerprint(PARAMS) == fingerprint(PARAMS.model_copy())
    assert fingerprint(PARAMS) != fingerprint(PARAMS.model_copy(update={"seed": 8}))


class _StoppedWhileDecoding:
    """The pipeline, but decoding is interrupted as a graceful stop would (the job goes back to the queue)."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def decode(self, *args: Any, **kwargs: Any) -> Any:
        raise WorkerStoppingError("stopped while decoding")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipeline, name)


def test_a_job_lost_after_its_last_step_does_not_denoise_again(
    store: JobStore, make_deps: Callable[..., RunDeps], job_settings: Settings, short_inputs_url: str,
    reference_sha: str, animator: Animator,
) -> None:  # fmt: skip
    """The latents after the last step are checkpointed too: the next attempt goes straight to decoding."""
    job_id = create_job(store, short_inputs_url, params=PARAMS)
    interrupted = Animator(estimator=animator.estimator, pipeline=_StoppedWhileDecoding(animator.pipeline))  # type: ignore[arg-type]
    run_job(job_id, make_deps(animator=lambda: interrupted))
    assert store.get(job_id).status is JobStatus.queued
    assert torch.load(_checkpoint_path(job_settings, job_id), weights_only=True)["step"] == STEPS

    deps = make_deps()
    denoised: list[int] = []
    deps.animator = lambda: animator
    original = store.update_running

    def recording(jid: str, worker: str, **changes: Any) -> Any:
        if "progress" in changes and changes["progress"].stage.value == "denoising":
            denoised.append(changes["progress"].step)
        return original(jid, worker, **changes)

    store.update_running = recording  # type: ignore[method-assign]
    run_job(job_id, deps)

    assert store.get(job_id).resumed_from_step == STEPS
    assert [step for step in denoised if step > 0] == []  # no denoising step ran again
    assert _output_sha(store, job_id) == reference_sha


def test_a_job_taken_over_keeps_its_checkpoint_for_the_next_attempt(
    store: JobStore, make_deps: Callable[..., RunDeps], job_settings: Settings, short_inputs_url: str
) -> None:
    """The reaper hands the job back while this worker still runs it (its lease lapsed): the worker stops, as
    no longer ours, and leaves the checkpoint to the attempt that follows."""
    job_id = create_job(store, short_inputs_url, params=PARAMS)
    _handed_back_at(store, make_deps, job_id)
    reaped = iter([lambda: store.transition(job_id, JobStatus.queued)])

    def reaped_once() -> bool:
        next(reaped, lambda: None)()
        return False

    deps = make_deps()
    deps.must_stop = reaped_once
    run_job(job_id, deps)

    assert store.get(job_id).status is JobStatus.queued
    assert _checkpoint_path(job_settings, job_id).is_file()


# The result checkpoint: the encoded files, kept before the upload ------------------------------------------------


class LostAtUpload:
    """Storage through which the worker is lost (handed back) as it starts to upload ``attempt-{n}/output.mp4``."""

    def __init__(self, storage: Storage, attempt: int = 1) -> None:
        self.storage, self.suffix = storage, f"/attempt-{attempt}/output.mp4"

    def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        if key.endswith(self.suffix):
            raise WorkerStoppingError(f"lost while uploading {key}")
        return self.storage.put_file(key, path, content_type)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)


def _stages_of_next_attempt(
    store: JobStore, make_deps: Callable[..., RunDeps], job_id: str, **fields: Any
) -> list[str]:
    """Run the job's next attempt; the progress stages it reported, in order."""
    stages: list[str] = []
    original = store.update_running

    def recording(jid: str, worker: str, **changes: Any) -> Any:
        if "progress" in changes:
            stages.append(f"{changes['progress'].stage.value}:{changes['progress'].step}")
        return original(jid, worker, **changes)

    store.update_running = recording  # type: ignore[method-assign]
    try:
        run_job(job_id, make_deps(**fields))
    finally:
        store.update_running = original  # type: ignore[method-assign]
    return stages


def _result_checkpoint_path(settings: Settings, job_id: str) -> Path:
    return settings.data_dir / "results" / result_checkpoint_key(job_id)


def _lost_at_upload(store: JobStore, make_deps: Callable[..., RunDeps], job_settings: Settings, job_id: str) -> None:
    run_job(job_id, make_deps(storage=LostAtUpload(create_storage(job_settings))))
    assert store.get(job_id).status is JobStatus.queued
    assert _result_checkpoint_path(job_settings, job_id).is_file()


def test_a_job_lost_while_uploading_uploads_its_kept_result_and_runs_no_stage_again(
    store: JobStore, make_deps: Callable[..., RunDeps], job_settings: Settings, short_inputs_url: str,
    reference_sha: str,
) -> None:  # fmt: skip
    job_id = create_job(store, short_inputs_url, params=PARAMS)
    _lost_at_upload(store, make_deps, job_settings, job_id)

    stats: list[Any] = []
    stages = _stages_of_next_attempt(store, make_deps, job_id, on_checkpoints=stats.append)

    job = store.get(job_id)
    assert [stage.split(":")[0] for stage in stages] == ["fetching", "uploading"], stages
    assert set(job.timings) == {"fetching", "uploading"}, job.timings
    assert (job.attempts, job.resumed_from_step) == (2, STEPS)
    assert stats[0].resumed_from_step == STEPS and stats[0].written == 0  # nothing stored again
    assert _output_sha(store, job_id) == reference_sha  # the first attempt's encoding: the same bytes
    assert job.output is not None
    prefix = f"jobs/{job_id}/attempt-2/"
    assert (job.output.video_key, job.output.pose_video_key) == (f"{prefix}output.mp4", f"{prefix}pose.mp4")
    results = job_settings.data_dir / "results"
    assert (results / job.output.pose_video_key).is_file() and (results / job.output.video_key).is_file()
    assert not (results / "jobs" / job_id / "attempt-1").exists()  # the handed-back attempt left nothing
    assert not (results / "jobs" / job_id / "checkpoint").exists()  # deleted once the job ended


@pytest.mark.parametrize("damage", ["truncated", "video byte flipped", "not an archive", "another job's"])
def test_a_damaged_or_foreign_result_checkpoint_is_not_used(
    damage: str, store: JobStore, make_deps: Callable[..., RunDeps], job_settings: Settings, short_inputs_url: str,
    reference_sha: str,
) -> None:  # fmt: skip
    """The job runs its stages again (from the denoising checkpoint after the last step, if it has one) to the
    same output."""
    job_id = create_job(store, short_inputs_url, params=PARAMS)
    path = _result_checkpoint_path(job_settings, job_id)
    if damage == "another job's":  # other params: the same files would be the wrong result
        other_id = create_job(store, short_inputs_url, params=PARAMS.model_copy(update={"guidance_scale": 2.5}))
        _lost_at_upload(store, make_deps, job_settings, other_id)
        path.parent.mkdir(parents=True)
        shutil.copy(_result_checkpoint_path(job_settings, other_id), path)
    else:
        _lost_at_upload(store, make_deps, job_settings, job_id)
        data = bytearray(path.read_bytes())
        if damage == "truncated":
            data = data[: len(data) - 2000]
        elif damage == "video byte flipped":  # the archive still reads; the file's sha256 no longer matches
            with tarfile.open(path) as archive:
                offset = archive.getmember("output.mp4").offset_data
            data[offset + 200] ^= 0xFF
        else:
            data = bytearray(b"nothing a result checkpoint would hold")
        path.write_bytes(bytes(data))

    stages = _stages_of_next_attempt(store, make_deps, job_id)

    job = store.get(job_id)
    assert "encoding:0" in stages and "encoding" in job.timings, stages
    assert _output_sha(store, job_id) == reference_sha
