"""A running job's lease, kept from a thread and checked at each denoising step.

The thread renews every lease_s / 4 so that long stages without steps (pose, decoding, the upload)
keep the job; a renewal the store refuses means the job was canceled or taken over, and the next
``check`` says so.
"""

import contextvars
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from core.errors import JobCanceledError
from core.jobs.store import JobStore

logger = logging.getLogger(__name__)


class LeaseKeeper:
    """One claimed job's lease: ``kept()`` renews it from a thread; ``check()`` renews it now."""

    def __init__(self, store: JobStore, job_id: str, worker: str, lease_s: int) -> None:
        self.store, self.job_id, self.worker, self.lease_s = store, job_id, worker, lease_s
        self._lost = threading.Event()

    @property
    def lost(self) -> bool:
        """True once a renewal found the lease gone or held by another worker."""
        return self._lost.is_set()

    def check(self) -> None:
        """Renew the lease now; raise ``JobCanceledError`` if it is no longer this worker's."""
        if self.lost or not self.store.renew_lease(self.job_id, self.worker, lease_s=self.lease_s):
            raise JobCanceledError(f"job {self.job_id} was canceled or taken over")

    @contextmanager
    def kept(self) -> Iterator["LeaseKeeper"]:
        """Renew from a thread until the block ends (the thread is joined before it returns)."""
        stop = threading.Event()
        # In the job's log context, so its warnings name the job.
        thread = threading.Thread(
            target=contextvars.copy_context().run, args=(self._renew_until, stop), name=f"lease-{self.job_id}",
            daemon=True,
        )  # fmt: skip
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()

    def _renew_until(self, stop: threading.Event) -> None:
        while not stop.wait(self.lease_s / 4):
            try:
                if not self.store.renew_lease(self.job_id, self.worker, lease_s=self.lease_s):
                    self._lost.set()  # the next check raises JobCanceledError
                    return
            except Exception:  # a Redis blip: try again until the lease would lapse anyway
                logger.warning("job %s: lease renewal failed", self.job_id, exc_info=True)
