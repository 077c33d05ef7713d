"""The reaper: running jobs whose worker stopped renewing its lease go back to the queue, or fail;
queued jobs that lost their task message get a new one; expired uploads' files are deleted.

Every worker runs one (a thread), at start and then every ``interval_s``; concurrent reapers are
safe because each hand-back is a guarded transaction in the store. A re-queued job gets a fresh
task message: the original one may sit unacknowledged in the broker for hours (Redis visibility
timeout), and a duplicate is harmless because only a claim runs a job.
"""

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from core.contract.records import JobStatus, utc_now
from core.jobs.deliveries import Deliveries
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
            Deliveries(store.db).record_status_event(job)  # job.failed, if the job asked for it
    return requeued


def resend_stranded(
    store: JobStore,
    send_task: Callable[[str, str], None],
    broker_queue_length: Callable[[str], int],
    *,
    min_age_s: float,
    now: datetime | None = None,
    limit: int = 100,
) -> list[str]:
    """Give a new task message to queued jobs that have none; returns their ids.

    A job can be left queued without a message when the broker loses it (a Redis failure between
    the claim and the ack, a restart without AOF). While its queue's broker list is empty, an old
    queued job cannot have a message waiting, so it gets a new one; a job that was in flight gets a
    harmless duplicate. ``min_age_s`` spares jobs whose message is on its way.
    """
    now = now or utc_now()
    resent = []
    waiting: dict[str, int] = {}  # broker list lengths at the start of the pass, per queue
    for job_id in store.queued_ids(limit):
        job = store.get(job_id)
        if job.status is not JobStatus.queued or now - job.created_at < timedelta(seconds=min_age_s):
            continue
        if waiting.setdefault(job.queue, broker_queue_length(job.queue)) > 0:
            continue  # messages are waiting there; look again once the list has drained
        logger.warning("job %s: queued for %s with no message in %s; sending a new one", job_id,
                       now - job.created_at, job.queue)  # fmt: skip
        send_task(job_id, job.queue)
        resent.append(job_id)
    return resent


class Reaper:
    """Runs ``reap_once`` and ``resend_stranded`` in a daemon thread until stopped."""

    def __init__(
        self,
        store: JobStore,
        send_task: Callable[[str, str], None],
        *,
        max_attempts: int,
        interval_s: float,
        broker_queue_length: Callable[[str], int] | None = None,
        stranded_after_s: float = 600.0,
        sweep_uploads: Callable[[], object] | None = None,
    ) -> None:
        self.store, self.send_task = store, send_task
        self.sweep_uploads = sweep_uploads
        self.max_attempts, self.interval_s = max_attempts, interval_s
        self.broker_queue_length, self.stranded_after_s = broker_queue_length, stranded_after_s
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
                if self.broker_queue_length is not None:
                    resend_stranded(
                        self.store, self.send_task, self.broker_queue_length, min_age_s=self.stranded_after_s
                    )
                if self.sweep_uploads is not None:
                    self.sweep_uploads()
            except Exception:  # a Redis hiccup must not end the thread; the next pass tries again
                logger.warning("reaper pass failed", exc_info=True)
            if self._stop.wait(self.interval_s):
                return
