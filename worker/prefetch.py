"""Prepare the next queued job's inputs while the current job denoises, so the GPU never waits on I/O.

Bounded: one job ahead, one thread, at most ``max_bytes`` of decoded frames held. Read-only towards
the job store (nothing is claimed); run_job claims as usual and takes the entry only if its id
matches. A failure here is only logged: the job then fetches its inputs itself and fails there
with the right error.
"""

import logging
import tempfile
import threading
import time
from pathlib import Path

from core.backends.base import LoadedModel
from core.contract.records import JobStatus
from core.errors import JobNotFoundError
from core.execution.inputs import VIDEO_FILE, fetch_job_inputs
from core.execution.poses import DrivingPoseCache, prepare_job_poses
from core.execution.prefetch import PreparedInputs
from core.jobs.store import JobStore
from core.settings import Settings
from core.storage import Storage

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 4 * 2**30  # decoded driving frames held for the next job; a longer video is not prepared
_QUEUE_PEEK = 4  # queued ids looked at: the head may be the current job or belong to another queue


class Prefetcher:
    """One worker process's look-ahead: ``prepare_next`` starts it, ``take`` hands it to run_job."""

    def __init__(
        self,
        store: JobStore,
        storage: Storage,
        settings: Settings,
        animator: LoadedModel,
        queues: list[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        pose_cache: DrivingPoseCache | None = None,
    ) -> None:
        self.store, self.storage, self.settings, self.animator = store, storage, settings, animator
        self.pose_cache = pose_cache
        self.queues, self.max_bytes = set(queues), max_bytes
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._preparing: str | None = None  # the job id the thread works on
        self._ready: PreparedInputs | None = None

    def prepare_next(self, current_job_id: str) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._prepare, args=(current_job_id,), name="prefetch", daemon=True)
            self._thread.start()

    def take(self, job_id: str) -> PreparedInputs | None:
        with self._lock:
            thread, preparing = self._thread, self._preparing
        if thread is not None and preparing == job_id:
            thread.join()  # half done is better than starting over
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is None or ready.job_id != job_id:
            return None
        logger.info("job %s: inputs and poses were prepared ahead", job_id)
        return ready

    def _prepare(self, current_job_id: str) -> None:
        job_id = self._next_job_id(current_job_id)
        if job_id is None:
            return
        with self._lock:
            if self._ready is not None and self._ready.job_id == job_id:
                return
            self._preparing, self._ready = job_id, None
        try:
            self._ready = self._prepare_job(job_id)
        except Exception as exc:  # the job meets the same error itself and records it
            logger.info("job %s: not prepared ahead (%s: %s)", job_id, type(exc).__name__, exc)
        finally:
            with self._lock:
                self._preparing = None

    def _next_job_id(self, current_job_id: str) -> str | None:
        for job_id in self.store.queued_ids(_QUEUE_PEEK):
            if job_id == current_job_id:
                continue
            try:
                job = self.store.get(job_id)
            except JobNotFoundError:
                continue
            if job.status is JobStatus.queued and job.queue in self.queues:
                return job_id
        return None

    def _prepare_job(self, job_id: str) -> PreparedInputs | None:
        job = self.store.get(job_id)
        scratch = self.settings.data_dir / "scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f"prefetch-{job_id}-", dir=scratch) as tmp:
            image, video = fetch_job_inputs(job, self.settings, Path(tmp), storage=self.storage, db=self.store.db)
            fetch_s = time.perf_counter() - started
            if video.frames.nbytes > self.max_bytes:
                logger.info("job %s: not prepared ahead, %d bytes of frames", job_id, video.frames.nbytes)
                return None
            # In the folder still: the pose cache hashes the video's bytes.
            poses = prepare_job_poses(job, image, video, Path(tmp) / VIDEO_FILE, self.animator, self.pose_cache)
        logger.info("job %s: prepared ahead in %.2f s", job_id, time.perf_counter() - started)
        return PreparedInputs(job_id, image, video, poses, fetch_s)
