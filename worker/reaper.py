"""The reaper: running jobs whose worker stopped renewing its lease go back to the queue, or fail.

Every worker runs one (a thread), at start and then every ``interval_s``; concurrent reapers are
safe because each hand-back is a guarded transaction in the store. A re-queued job gets a fresh
task message: the original one may sit unacknowledged in the broker for hours (Redis visibility
timeout), and a duplicate is harmless because only a claim runs a job.
"""

import logging
import threading
from collections.abc import Callable

from core.jobs.deliveries import Deliveries
from core.jobs.records import JobStatus
from core.jobs.store import JobStore

logger = logging.getLogger(__name__)


def reap_once(store: JobStore, send_task: Callable[[str, str], None], *, max_attempts: int) -> list[str]:
    """One pass over the running jobs; returns the ids handed back to the queue.

    ``send_task(job_id, queue)`` re-sends a job to its own GPU-class queue.
    """
    requeued = []
    for job_id in store.running_ids():
        if store.is_held(job_id):
            continue
        job = store.reap_lapsed(job_id, max_attempts=max_attempts)
        if job is None:
            continue
        if job.status is JobStatus.queued:
            logger.warning("job %s: its worker was lost; queued again (attempt %d next)", job_id, job.attempts + 1)
            send_task(job_id, job.queue)
            requeued.append(job_id)
        else:
            logger.error("job %s: its worker was lost %d times; failed", job_id, job.attempts)
            Deliveries(store).record_status_event(job)  # job.failed, if the job asked for it
    return requeued


class Reaper:
    """Runs ``reap_once`` in a daemon thread until stopped."""

    def __init__(
        self, store: JobStore, send_task: Callable[[str, str], None], *, max_attempts: int, interval_s: float
    ) -> None:
        self.store, self.send_task = store, send_task
        self.max_attempts, self.interval_s = max_attempts, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            try:
                reap_once(self.store, self.send_task, max_attempts=self.max_attempts)
            except Exception:  # a Redis hiccup must not end the thread; the next pass tries again
                logger.warning("reaper pass failed", exc_info=True)
            if self._stop.wait(self.interval_s):
                return
