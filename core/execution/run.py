"""run_job: one job from claim to stored result, the worker's whole business logic.

Redelivery-safe: it starts with a guarded claim and does nothing for a job that is finished or
held by a live worker. No Celery here; worker/tasks.py only forwards the job id.
"""

import contextvars
import functools
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
import redis

from core.animate import Animation, Animator, animate
from core.contract.events import WebhookEvent
from core.contract.queues import LEASE_S
from core.contract.records import Job, JobError, JobOutput, JobStatus, Progress, Stage, utc_now
from core.contract.transitions import InvalidTransitionError
from core.errors import JobCanceledError, JobNotFoundError, JobTimeoutError, MimicMotionError
from core.execution.inputs import fetch_job_inputs
from core.execution.prefetch import InputsPrefetch
from core.execution.upload import ResultFile, upload_results
from core.jobs.deliveries import Deliveries
from core.jobs.store import JobStore
from core.log_format import bind_log_context, job_log_context
from core.settings import Settings
from core.storage import Storage
from core.video.decode import DecodedVideo
from core.video.encode import write_mp4

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Share of the whole job each stage spans, for ``progress.fraction`` (denoising dominates on a GPU).
STAGE_SPANS: dict[Stage, tuple[float, float]] = {
    Stage.fetching: (0.0, 0.05), Stage.pose: (0.05, 0.15), Stage.denoising: (0.15, 0.85),
    Stage.decoding: (0.85, 0.92), Stage.encoding: (0.92, 0.97), Stage.uploading: (0.97, 1.0),
}  # fmt: skip


class ResultFinisher(Protocol):
    def submit(self, job_id: str, finish: Callable[[], None]) -> None:
        """Run ``finish`` (encode, upload, final write) in the background; it never raises."""


@dataclass
class RunDeps:
    """What a job needs from its process; the worker builds one, tests build their own."""

    store: JobStore
    storage: Storage
    animator: Callable[[], Animator]  # the process's loaded models (loaded once, at worker start)
    settings: Settings
    worker: str
    clock: Callable[[], float] = time.monotonic
    lease_s: int = LEASE_S
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
    # Called once per claimed job, after its final write (or after it was left to its lease), with the
    # seconds since its claim; from the finisher's thread when there is one. The worker counts outcomes.
    on_job_end: Callable[[str, float], None] = lambda job_id, seconds: None


@job_log_context  # every log line of this job carries its id
def run_job(job_id: str, deps: RunDeps) -> None:
    """Run job ``job_id`` if this worker can claim it; record success, or failure with its code.

    The GPU part (fetch, pose, denoising, decoding) runs in the caller's thread. Encoding, upload and
    the final write run there too, or on ``deps.finisher`` so that the next job can start on the GPU
    meanwhile. The job's lease and scratch directory last until its final write either way.
    """
    try:
        job = deps.store.claim(job_id, deps.worker, lease_s=deps.lease_s)
    except JobNotFoundError:
        job = None
    if job is None:
        logger.info("job %s: unknown, finished or held by a live worker; nothing to do", job_id)
        return
    logger.info("job %s: started on %s (attempt %d)", job_id, deps.worker, job.attempts)
    claimed_at = deps.clock()
    run = _Run(job, deps)
    scratch = deps.settings.data_dir / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    held = ExitStack()  # closed after the final write: the lease stops, then the scratch files go
    tmp = Path(held.enter_context(tempfile.TemporaryDirectory(prefix=f"job-{job_id}-", dir=scratch)))
    held.enter_context(run.lease_renewed())

    def generate() -> Animation:
        run.check_deadline()  # a job that waited in the queue past its deadline never starts
        run.record_event(job, "job.started")
        return run.generate(tmp)

    try:
        animation = run.guarded(generate)
    except BaseException:  # interpreter exit or Celery's cold shutdown: stop renewing, leave it to its lease
        held.close()
        raise

    def finish() -> None:
        with held:
            if animation is not None:
                run.guarded(lambda: run.succeed(run.store_results(animation, tmp)))
        deps.on_job_end(job_id, deps.clock() - claimed_at)

    if animation is None or deps.finisher is None:
        finish()
    else:  # the finisher's thread keeps this job's log context
        deps.finisher.submit(job_id, functools.partial(contextvars.copy_context().run, finish))


class _WorkerStoppingError(Exception):
    """Raised between denoising steps when the worker's shutdown grace is over."""


class _Run:
    """One claimed job: its stages, progress writes, lease and final transition."""

    def __init__(self, job: Job, deps: RunDeps) -> None:
        self.job, self.deps, self.settings = job, deps, deps.settings
        self.timings: dict[str, float] = {}
        self._last_write = float("-inf")
        self._lease_lost = threading.Event()
        self.params = job.params
        self.webhooks = Deliveries(deps.store)
        self._last_event_time, self._last_event_fraction = float("-inf"), 0.0

    def guarded(self, step: Callable[[], T]) -> T | None:
        """Run ``step``; on an error, record the job's end the way the error calls for and return None."""
        try:
            return step()
        except (JobCanceledError, InvalidTransitionError) as exc:
            logger.info("job %s: stopped, no longer ours (%s)", self.job.id, exc)
        except _WorkerStoppingError:
            self.requeue()
        except MimicMotionError as exc:
            self.fail(exc.code, exc.message)
        except redis.RedisError:
            # The job store is unreachable, so nothing can be recorded: the lease lapses and the reaper
            # hands the job back (or fails it as worker_lost). A Redis blip never fails a job as internal_error.
            logger.warning("job %s: job store unavailable; left to its lease", self.job.id, exc_info=True)
        except Exception:
            logger.exception("job %s: unexpected error", self.job.id)  # the traceback goes to the log only
            self.fail("internal_error", "the worker hit an unexpected error; it has been logged")
        return None

    def generate(self, tmp: Path) -> Animation:
        """The GPU part: inputs, poses, denoising and VAE decoding, as uint8 frames."""
        job = self.job
        # 1. Fetch and decode the inputs (refused addresses, caps and bad media fail the job here),
        #    unless the worker prepared them while the previous job denoised.
        self.report(Stage.fetching, 0, 1, force=True)
        prepared = self.deps.prefetch.take(job.id) if self.deps.prefetch is not None else None
        with self.timed("fetching"):
            image, video = (prepared.image, prepared.video) if prepared else self.fetch_inputs(tmp)
        # 2-4. Pose, denoising and VAE decoding run in core.animate; on_step reports the steps.
        self.report(Stage.pose, 0, 1, force=True)
        animation = animate(
            image, video.frames, job.params, self.deps.animator(),
            decode_chunk_size=self.settings.decode_chunk_size, on_step=self.on_step,
            posed=prepared.posed if prepared else None,
        )  # fmt: skip
        self.timings.update(animation.timings)
        self.params = animation.params  # the seed actually used, recorded with the result
        return animation

    def store_results(self, animation: Animation, tmp: Path) -> JobOutput:
        """The CPU and I/O part: encode the result and its pose video, then upload both."""
        job = self.job
        # 5. Encode the result, and the pose frames aligned with it (the reference's own pose dropped).
        self.report(Stage.encoding, 0, 1, force=True)
        with self.timed("encoding"):
            write_mp4(animation.frames, tmp / "output.mp4", animation.params.fps)
            write_mp4(animation.pose_frames[1:], tmp / "pose.mp4", animation.params.fps)
        # 6. Upload under the job's own keys: a redelivery overwrites only its own earlier attempt.
        self.report(Stage.uploading, 0, 1, force=True)
        #    Both files or neither: storage faults are retried with backoff, then fail as storage_error.
        with self.timed("uploading"):
            pose, video_out = upload_results(
                self.deps.storage,
                [ResultFile(f"jobs/{job.id}/pose.mp4", tmp / "pose.mp4", "video/mp4"),
                 ResultFile(f"jobs/{job.id}/output.mp4", tmp / "output.mp4", "video/mp4")],
                attempts=self.settings.upload_attempts, backoff_s=self.settings.upload_backoff_s,
            )  # fmt: skip
        return _output(animation, video_out.key, pose.key, video_out.size_bytes, video_out.sha256)

    def fetch_inputs(self, tmp: Path) -> tuple[np.ndarray, DecodedVideo]:
        return fetch_job_inputs(self.job, self.settings, tmp)

    def on_step(self, step: int, total_steps: int) -> None:
        """After each denoising step: stop when the job is no longer ours, else report (throttled)."""
        if self.deps.must_stop():
            raise _WorkerStoppingError(f"job {self.job.id}: the worker is shutting down")
        if self._lease_lost.is_set() or not self.deps.store.renew_lease(
            self.job.id, self.deps.worker, lease_s=self.deps.lease_s
        ):
            raise JobCanceledError(f"job {self.job.id} was canceled or taken over")
        if step == 1 and self.deps.prefetch is not None:  # the GPU is busy now: prepare the next job
            self.deps.prefetch.prepare_next(self.job.id)
        if step >= total_steps:  # the pipeline decodes right after its last step
            self.report(Stage.decoding, 0, 1, force=True)
        else:
            self.report(Stage.denoising, step, total_steps, force=step == 1)

    def report(self, stage: Stage, step: int, total_steps: int, *, force: bool = False) -> None:
        """Write progress (throttled) at every stage and step; also where the deadline is checked."""
        bind_log_context(stage=stage.value)
        self.check_deadline()
        now = self.deps.clock()
        if not force and now - self._last_write < self.deps.min_progress_interval_s:
            return
        self._last_write = now
        progress = _progress(stage, step, total_steps)
        job = self.deps.store.update_running(self.job.id, self.deps.worker, progress=progress)
        if job is None:
            raise JobCanceledError(f"job {self.job.id} was canceled or taken over")
        self.record_progress_event(job)

    def check_deadline(self) -> None:
        deadline = self.job.deadline_at
        if deadline is not None and self.deps.wall_clock() >= deadline:
            raise JobTimeoutError(f"the job did not finish by its deadline, {deadline.isoformat()} (timeout_s)")

    def record_event(self, job: Job, event_type: WebhookEvent) -> None:
        """Record a webhook event for the webhook worker to send; this process never sends HTTP itself."""
        try:
            self.webhooks.record_event(job, event_type)
        except redis.RedisError:  # the job's own record matters more than its notification
            logger.warning("job %s: could not record webhook event %s", job.id, event_type, exc_info=True)

    def record_progress_event(self, job: Job) -> None:
        if job.progress is None or "job.progress" not in job.webhook_events:
            return
        now = self.deps.clock()
        if (
            now - self._last_event_time < self.deps.webhook_progress_interval_s
            or job.progress.fraction - self._last_event_fraction < self.deps.webhook_progress_min_fraction
        ):
            return
        self._last_event_time, self._last_event_fraction = now, job.progress.fraction
        self.record_event(job, "job.progress")

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        started = self.deps.clock()
        yield
        self.timings[name] = self.deps.clock() - started

    @contextmanager
    def lease_renewed(self) -> Iterator[None]:
        """Renew the lease from a thread too, so long stages without steps (pose, decode) keep it."""
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.deps.lease_s / 4):
                try:
                    if not self.deps.store.renew_lease(self.job.id, self.deps.worker, lease_s=self.deps.lease_s):
                        self._lease_lost.set()  # the next step raises JobCanceledError
                        return
                except Exception:  # a Redis blip: try again until the lease would lapse anyway
                    logger.warning("job %s: lease renewal failed", self.job.id, exc_info=True)

        # In the job's log context, so its warnings name the job.
        thread = threading.Thread(
            target=contextvars.copy_context().run, args=(renew,), name=f"lease-{self.job.id}", daemon=True
        )
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def succeed(self, output: JobOutput) -> None:
        job = self.deps.store.transition(
            self.job.id, JobStatus.succeeded, worker=self.deps.worker, output=output, params=self.params,
            timings=self.timings, progress=_progress(Stage.uploading, 1, 1),
        )  # fmt: skip
        self.deps.store.record_stage_seconds(self.timings)
        self.record_event(job, "job.succeeded")
        logger.info("job %s: succeeded (%s)", self.job.id, ", ".join(f"{k} {v:.2f} s" for k, v in self.timings.items()))

    def requeue(self) -> None:
        """Hand the job back to the queue (running -> queued); the caller re-sends its message."""
        try:
            self.deps.store.transition(self.job.id, JobStatus.queued, worker=self.deps.worker)
            logger.warning("job %s: worker shutting down; back in the queue", self.job.id)
        except InvalidTransitionError as exc:
            logger.info("job %s: not handed back, no longer ours (%s)", self.job.id, exc)

    def fail(self, code: str, message: str) -> None:
        logger.warning("job %s: failed [%s] %s", self.job.id, code, message)
        try:
            job = self.deps.store.transition(
                self.job.id, JobStatus.failed, worker=self.deps.worker,
                error=JobError(code=code, message=message), timings=self.timings,
            )  # fmt: skip
        except InvalidTransitionError as exc:
            logger.info("job %s: not recorded as failed, no longer ours (%s)", self.job.id, exc)
            return
        self.record_event(job, "job.failed")


def _progress(stage: Stage, step: int, total_steps: int) -> Progress:
    start, end = STAGE_SPANS[stage]
    fraction = start + (end - start) * (step / total_steps if total_steps else 0.0)
    return Progress(stage=stage, step=step, total_steps=total_steps, fraction=round(fraction, 4))


def _output(animation: Animation, video_key: str, pose_key: str, size_bytes: int, sha256: str) -> JobOutput:
    num_frames, height, width = animation.frames.shape[:3]
    fps = animation.params.fps
    # write_mp4 drops an odd last row or column (yuv420p), so the stored size is the even one.
    return JobOutput(
        video_key=video_key, pose_video_key=pose_key, width=width - width % 2, height=height - height % 2,
        num_frames=num_frames, fps=fps, duration_s=round(num_frames / fps, 3), size_bytes=size_bytes, sha256=sha256,
    )  # fmt: skip
