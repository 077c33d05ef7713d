"""Encode and upload a job's result in a thread, so the next job starts on the GPU at once.

run_job hands over the job's last part (encode, upload, final write) once its frames are decoded;
the Celery task then returns and the worker takes its next message. One job finishes at a time: a
job whose frames are ready while the previous one still uploads waits for it, so the backlog stays
bounded (one result in memory) and results are stored in job order. If the process dies meanwhile,
the job's task message is already acknowledged, but its lease lapses and the reaper runs it again.
"""

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError

logger = logging.getLogger(__name__)


class BackgroundFinisher:
    """One background thread for the finishing work of one job at a time (the worker's task thread submits)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finish")
        self._pending: tuple[str, Future[None]] | None = None

    def submit(self, job_id: str, finish: Callable[[], None]) -> None:
        """Start ``finish`` for ``job_id`` once the previous job's finishing work is done."""
        if self._pending is not None and not self._pending[1].done():
            logger.info("job %s: waiting for job %s's results to be stored", job_id, self._pending[0])
        self.drain()
        self._pending = (job_id, self._executor.submit(finish))

    def drain(self, timeout_s: float | None = None) -> bool:
        """Wait for the job being finished, if any; False if it still runs after ``timeout_s``."""
        if self._pending is None:
            return True
        job_id, future = self._pending
        try:
            future.result(timeout=timeout_s)
        except FutureTimeoutError:
            logger.warning("job %s: results still being stored after %.0f s; left to its lease", job_id, timeout_s)
            return False
        except Exception:  # run_job records every error itself; this only keeps the worker alive
            logger.exception("job %s: finishing raised", job_id)
        self._pending = None
        return True
