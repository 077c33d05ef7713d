"""run_job: one job from claim to stored result, the worker's whole business logic.

Redelivery-safe: it starts with a guarded claim and does nothing for a job that is finished or
held by a live worker. The job then runs as numbered stages, 1 fetch to 7 upload; progress, the
lease and the final write are their own small parts. No Celery here; worker/tasks.py only forwards
the job id.
"""

import contextvars
import functools
import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import numpy as np

from core.backends.base import GenerationHooks, LoadedModel
from core.contract.params import ModelParams, with_seed
from core.contract.records import Job, utc_now
from core.contract.stages import Stage, StageTimer
from core.errors import JobNotFoundError
from core.execution.checkpoints import (
    CheckpointStats,
    DenoisingCheckpoints,
    array_sha256,
    delete_checkpoints,
    job_fingerprint,
    model_files_sha256,
)
from core.execution.events import JobEvents
from core.execution.final_write import FinalWrite
from core.execution.inputs import VIDEO_FILE, fetch_job_inputs
from core.execution.lease import LeaseKeeper
from core.execution.outcome import Failed, NoLongerOurs, Outcome, Succeeded, WorkerStoppingError, attempt
from core.execution.poses import DrivingPoseCache, JobPoses, prepare_job_poses
from core.execution.prefetch import InputsPrefetch
from core.execution.previews import EarlyPoseVideo, LivePreviews
from core.execution.progress import ProgressReporter
from core.execution.result_checkpoint import KeptResult, ResultCheckpoint
from core.execution.results import GeneratedFrames, encode_results, job_output, result_prefix
from core.execution.upload import ResultFile, upload_results
from core.jobs.deliveries import Deliveries
from core.jobs.store import JobStore
from core.log_format import job_log_context
from core.settings import Settings
from core.storage import Storage, StoredObject
from core.video.decode import DecodedVideo

logger = logging.getLogger(__name__)


class ResultFinisher(Protocol):
    def submit(self, job_id: str, finish: Callable[[], None]) -> None:
        """Run ``finish`` (encode, upload, final write) in the background; it never raises."""


@dataclass
class RunDeps:
    """What a job needs from its process; the worker builds one, tests build their own."""

    store: JobStore
    storage: Storage
    animator: Callable[[], LoadedModel]  # the process's loaded model (loaded once, at worker start)
    settings: Settings  # the lease is settings.lease_s
    worker: str
    clock: Callable[[], float] = time.monotonic
    min_progress_interval_s: float = 0.25  # at most 4 progress writes a second
    # True once the worker is shutting down and its grace is over: the job goes back to the queue.
    must_stop: Callable[[], bool] = lambda: False
    # job.progress webhooks: at most one per interval, and only after the fraction grew by this much,
    # so a job sends at most 10 however long it runs.
    webhook_progress_interval_s: float = 5.0
    webhook_progress_min_fraction: float = 0.1
    wall_clock: Callable[[], datetime] = utc_now  # for deadlines, which are wall-clock times
    # Prepares the next queued job's inputs while this one denoises (worker/prefetch.py); None: off.
    prefetch: InputsPrefetch | None = None
    # Encodes and uploads in the background while the next job runs (worker/finisher.py); None: inline.
    finisher: ResultFinisher | None = None
    # The driving videos' detected poses, reused by later jobs on the same video (core/execution/poses.py); None: off.
    pose_cache: DrivingPoseCache | None = None
    # Called once per claimed job, after its final write (or after it was left to its lease), with the
    # seconds since its claim; from the finisher's thread when there is one. The worker counts outcomes.
    on_job_end: Callable[[str, float], None] = lambda job_id, seconds: None
    # sha256 of the loaded model files, for checkpoint fingerprints; None: hashed from settings.model_dir
    # (once per process).
    model_files_sha256: Callable[[], Mapping[str, str]] | None = None
    # Called once per job that checkpointed or resumed, with what that cost and saved (the worker's metrics).
    on_checkpoints: Callable[[CheckpointStats], None] = lambda stats: None


@job_log_context  # every log line of this job carries its id
def run_job(job_id: str, deps: RunDeps) -> None:
    """Run job ``job_id`` if this worker can claim it; record success, or failure with its code.

    Stages 1-5 (fetch to decode) run in the caller's thread. Encoding, upload and the final write run
    there too, or on ``deps.finisher`` so that the next job can start on the GPU meanwhile. The job's
    lease and scratch directory last until its final write either way. A job whose earlier attempt kept
    its encoded result (core/execution/result_checkpoint.py) runs stage 1, for its fingerprint, then 7.
    """
    try:
        job = deps.store.claim(job_id, deps.worker, lease_s=deps.settings.lease_s)
    except JobNotFoundError:
        job = None
    if job is None:
        logger.info("job %s: unknown, finished or held by a live worker; nothing to do", job_id)
        return
    logger.info("job %s: started on %s (attempt %d)", job_id, deps.worker, job.attempts)
    claimed_at = deps.clock()
    scratch = deps.settings.data_dir / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    held = ExitStack()  # closed after the final write: the lease stops, then the scratch files go
    tmp = Path(held.enter_context(tempfile.TemporaryDirectory(prefix=f"job-{job_id}-", dir=scratch)))
    lease = held.enter_context(LeaseKeeper(deps.store, job_id, deps.worker, deps.settings.lease_s).kept())
    run = _JobRun(job, deps, tmp, lease)
    try:
        kept = attempt(run.kept_result)
        generated = kept if kept is not None else attempt(run.generate)
    except BaseException:  # interpreter exit or Celery's cold shutdown: stop renewing, leave it to its lease
        held.close()
        raise

    def finish() -> None:
        with held:
            outcome = generated if isinstance(generated, Outcome) else attempt(lambda: run.store(generated))
            run.previews.discard()
            if not isinstance(outcome, Succeeded):
                run.pose_video.discard()  # a job without a result keeps no files
            run.end_checkpoints(outcome)  # before the final write: a job seen finished has no checkpoint left
            run.final_write.record(outcome, run.timer.timings)
        deps.on_job_end(job_id, deps.clock() - claimed_at)

    if isinstance(generated, Outcome) or deps.finisher is None:
        finish()
    else:  # the finisher's thread keeps this job's log context
        deps.finisher.submit(job_id, functools.partial(contextvars.copy_context().run, finish))


class _JobRun:
    """One claimed job's stages; progress, lease, timing and the final write are its collaborators."""

    def __init__(self, job: Job, deps: RunDeps, tmp: Path, lease: LeaseKeeper) -> None:
        self.job, self.deps, self.tmp, self.lease = job, deps, tmp, lease
        self.events = JobEvents(Deliveries(deps.store.db))
        self.progress = ProgressReporter(
            job, deps.store, deps.worker, self.events, clock=deps.clock, wall_clock=deps.wall_clock,
            min_interval_s=deps.min_progress_interval_s, webhook_interval_s=deps.webhook_progress_interval_s,
            webhook_min_fraction=deps.webhook_progress_min_fraction,
        )  # fmt: skip
        # Job.timings: the seconds of each stage the job ran. Only the model stages wait for the device:
        # encoding and upload may run beside the next job's GPU work (background finishing), which a
        # device-wide synchronize would wait for.
        self.timer = StageTimer(deps.clock)
        self.final_write = FinalWrite(deps.store, job.id, deps.worker, self.events)
        # What the job shows while it runs: its pose video once the poses exist, previews while it denoises.
        self.prefix = result_prefix(job.id, job.attempts)
        self.pose_video = EarlyPoseVideo(
            deps.storage, deps.store, job.id, deps.worker, f"{self.prefix}pose.mp4", tmp / "pose.mp4"
        )
        self.previews = LivePreviews(
            deps.storage, deps.store, job.id, deps.worker, self.prefix, tmp,
            interval_fraction=deps.settings.preview_interval_fraction,
        )  # fmt: skip
        self.checkpoints: DenoisingCheckpoints | None = None  # made once the inputs are known, if on

    def generate(self) -> GeneratedFrames:
        """Stages 1-5, on the GPU: the inputs, their poses, and the model's conditioning, denoising and decoding."""
        job, settings, progress, timer = self.job, self.deps.settings, self.progress, self.timer
        progress.check_deadline()  # a job that waited in the queue past its deadline never starts
        self.events.record(job, "job.started")
        model = self.deps.animator()
        # 1. Fetch and decode the inputs (refused addresses, caps and bad media fail the job here),
        #    unless the worker prepared them, poses too, while the previous job denoised.
        image, video, prepared_poses = self.fetch_inputs()
        # 2. Poses: the reference fitted to the output, every frame's pose extracted (or the driving frames'
        #    taken from the pose cache) and drawn, and whatever else the model conditions on
        progress.start(Stage.pose)
        poses = prepared_poses if prepared_poses is not None else self.prepare_poses(image, video, model)
        posed = poses.posed
        timer.timings.update(posed.timings)  # timed where it ran: here, or ahead in the prefetch
        if poses.cache is not None:
            self.deps.store.update_running(job.id, self.deps.worker, cache=poses.cache)
        self.pose_video.start(posed.pose_video_frames, job.params.fps)  # the result's pose video, shown early
        # 3-5. The model's GPU stages: conditioning, denoising (from a previous attempt's checkpoint when there is
        #    one of this very job), decoding. After each step, on_step stops a job that is no longer ours and
        #    reports; every checkpoint_interval_s a checkpoint is stored on a helper thread.
        params = with_seed(job.params)  # the seed actually used is recorded with the result
        # The fingerprint also keys the result checkpoint (stage 7), which every model has; denoising checkpoints
        # only a model whose latents and step are its whole state.
        self.checkpoints = self._checkpoints(params, image, video.frames, model.dtype)
        hooks = GenerationHooks(
            timer=timer, start_stage=progress.start, on_step=self.on_step, on_estimate=self.previews.on_estimate,
            checkpoints=self.checkpoints if model.supports_checkpoints else None, on_resume=self._record_resume,
            decode_chunk_size=settings.decode_chunk_size,
        )  # fmt: skip
        try:
            frames = model.generate(posed, params, hooks)
        finally:
            self.previews.stop()  # not waiting: a preview still uploading ends before the final write
        return GeneratedFrames(frames, posed.pose_video_frames, params)

    def prepare_poses(self, image: np.ndarray, video: DecodedVideo, model: LoadedModel) -> JobPoses:
        return prepare_job_poses(self.job, image, video, self.tmp / VIDEO_FILE, model, self.deps.pose_cache)

    def store(self, generated: GeneratedFrames | KeptResult) -> Succeeded:
        """Stages 6-7, CPU and I/O: encode the result and its pose video, then upload both (only the upload for
        a result an earlier attempt encoded)."""
        if isinstance(generated, KeptResult):
            return self._store_kept(generated)
        settings, progress, timer = self.deps.settings, self.progress, self.timer
        # 6. Encode the result, and the pose frames aligned with it
        progress.start(Stage.encoding)
        early_pose = self.pose_video.result()  # stored after the pose stage already, unless that failed
        with timer.stage(Stage.encoding):
            files = encode_results(generated, self.prefix, self.tmp, with_pose=early_pose is None)
        # 7. Keep the encoded files as the result checkpoint (a worker lost from here on leaves the next attempt
        #    only the upload), then upload under this attempt's own keys (a stale worker never touches another
        #    attempt's files), all files or none: storage faults are retried with backoff, then fail as
        #    storage_error.
        progress.start(Stage.uploading)
        with timer.stage(Stage.uploading):
            self._keep_result(generated, files, early_pose)
            stored = upload_results(
                self.deps.storage, files, attempts=settings.upload_attempts, backoff_s=settings.upload_backoff_s,
                already_stored=[early_pose] if early_pose is not None else [],
            )  # fmt: skip
        pose, video = (early_pose, *stored) if early_pose is not None else stored
        return Succeeded(job_output(generated, pose, video), generated.params)

    def _checkpoints(
        self, params: ModelParams, image: np.ndarray, frames: np.ndarray, dtype: object
    ) -> DenoisingCheckpoints | None:
        """The job's checkpoints, with the fingerprint of what determines its result; None when turned off."""
        settings = self.deps.settings
        if settings.checkpoint_interval_s <= 0:
            return None
        if self.deps.model_files_sha256 is not None:
            model_files = self.deps.model_files_sha256()
        else:
            assert settings.model_dir is not None  # a worker without one never loaded a model
            model_files = model_files_sha256(self.job.model, settings.model_dir)
        # The decoded inputs: the same for the same input bytes, whether this worker fetched them or its
        # prefetch did (whose files are gone by now). Not the drawn poses: DWPose on CUDA may differ by a pixel.
        inputs = {"image": array_sha256(image), "video_frames": array_sha256(frames)}
        fingerprint = job_fingerprint(
            params, model_files=model_files, inputs=inputs, dtype=str(dtype),
            decode_chunk_size=settings.decode_chunk_size,
        )  # fmt: skip
        return DenoisingCheckpoints(
            self.deps.storage, self.job.id, fingerprint, self.tmp, interval_s=settings.checkpoint_interval_s,
            clock=self.deps.clock,
        )  # fmt: skip

    def _record_resume(self, step: int, total_steps: int) -> None:
        logger.info("job %s: resuming from the checkpoint at step %d of %d", self.job.id, step, total_steps)
        self.deps.store.update_running(self.job.id, self.deps.worker, resumed_from_step=step)

    def end_checkpoints(self, outcome: Outcome) -> None:
        """Delete the job's checkpoints once it has ended; keep them when another attempt will follow
        (handed back, left to its lease, or taken over by another worker)."""
        if self.checkpoints is not None:
            self.checkpoints.close()
            self.deps.on_checkpoints(self.checkpoints.stats)
        if isinstance(outcome, Succeeded | Failed) or (isinstance(outcome, NoLongerOurs) and self._ended()):
            delete_checkpoints(self.deps.storage, self.job.id)

    def _ended(self) -> bool:
        try:
            return self.deps.store.get(self.job.id).status.is_terminal
        except Exception:  # the job is gone, or the store is unreachable: retention removes the files later
            return False

    def on_step(self, step: int, total_steps: int) -> None:
        """After each denoising step: stop when the job is no longer ours, else report (throttled)."""
        if self.deps.must_stop():
            if self.checkpoints is not None:
                self.checkpoints.save_now()  # the next attempt resumes from this very step
            raise WorkerStoppingError(f"job {self.job.id}: the worker is shutting down")
        self.lease.check()
        if step == 1 and self.deps.prefetch is not None:  # the GPU is busy now: prepare the next job
            self.deps.prefetch.prepare_next(self.job.id)
        if step < total_steps:  # after the last step, stage 5 reports decoding at once
            self.progress.report(Stage.denoising, step, total_steps, force=step == 1)

    def kept_result(self) -> KeptResult | None:
        """The encoded result an earlier attempt of this very job kept before its upload, or None: then the job
        runs its stages. Stage 1 runs here when there is one: the fingerprint needs the fetched inputs."""
        if self.deps.settings.checkpoint_interval_s <= 0:
            return None
        reader = ResultCheckpoint(self.deps.storage, self.job.id, self.tmp, CheckpointStats())
        archive = reader.fetch()  # most jobs have none: one missing-object read, and nothing else runs
        if archive is None:
            return None
        self.progress.check_deadline()
        self.events.record(self.job, "job.started")  # once per job: generate() recording it again sends nothing
        image, video, _ = self.fetch_inputs()  # prepared poses, if any, are not needed: only the upload runs
        params = with_seed(self.job.params)
        checkpoints = self.checkpoints = self._checkpoints(params, image, video.frames, self._dtype())
        assert checkpoints is not None  # checkpoints are on
        kept = reader.load(archive, checkpoints.fingerprint)
        if kept is None:
            return None
        # No denoising step is left to run, as after a denoising checkpoint of the last step; decoding and
        # encoding are skipped too (the job's timings show fetching and uploading only).
        steps = kept.params.num_inference_steps
        checkpoints.stats.resumed_from_step = steps
        logger.info(
            "job %s: uploading the result an earlier attempt encoded; no stage before it runs again", self.job.id
        )
        self.deps.store.update_running(self.job.id, self.deps.worker, resumed_from_step=steps)
        return kept

    def fetch_inputs(self) -> tuple[np.ndarray, DecodedVideo, JobPoses | None]:
        """Stage 1: the job's image and decoded video, and the poses when the prefetch prepared all three."""
        self.progress.start(Stage.fetching)
        with self.timer.stage(Stage.fetching):
            prepared = self.deps.prefetch.take(self.job.id) if self.deps.prefetch is not None else None
            if prepared is not None:
                return prepared.image, prepared.video, prepared.poses
            deps = self.deps
            image, video = fetch_job_inputs(self.job, deps.settings, self.tmp, storage=deps.storage, db=deps.store.db)
            return image, video, None

    def _dtype(self) -> object:
        return self.deps.animator().dtype

    def _keep_result(
        self, generated: GeneratedFrames, files: list[ResultFile], early_pose: StoredObject | None
    ) -> None:
        """Store the result checkpoint: the encoded files, with the pose video the pose stage stored early."""
        if self.checkpoints is None:  # checkpoints are off
            return
        by_name = {file.key.removeprefix(self.prefix): file for file in files}
        if early_pose is not None:
            by_name["pose.mp4"] = ResultFile(early_pose.key, self.pose_video.path, early_pose.content_type)
        result = ResultCheckpoint(self.deps.storage, self.job.id, self.tmp, self.checkpoints.stats)
        result.save(self.checkpoints.fingerprint, generated, by_name)

    def _store_kept(self, kept: KeptResult) -> Succeeded:
        """Stage 7 alone: upload the files an earlier attempt encoded, under this attempt's own keys."""
        settings = self.deps.settings
        self.progress.start(Stage.uploading)
        with self.timer.stage(Stage.uploading):
            pose, video = upload_results(
                self.deps.storage, kept.to_upload(self.prefix), attempts=settings.upload_attempts,
                backoff_s=settings.upload_backoff_s,
            )  # fmt: skip
        return Succeeded(kept.output(pose, video), kept.params)
