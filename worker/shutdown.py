"""Graceful stop: how long a SIGTERM'd worker keeps running its job before handing it back.

Celery's warm shutdown (solo pool) lets the running task finish. A real job can run for many
minutes, longer than an orchestrator waits before SIGKILL, so after ``shutdown_grace_s`` the job stops
at its next denoising step and goes back to the queue (running -> queued, message requeued) instead.
"""

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class GracefulStop:
    """Remembers when the worker was asked to stop; ``expired()`` once the grace has run out."""

    def __init__(self, grace_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace_s, self.clock = grace_s, clock
        self._requested_at: float | None = None
        self._lock = threading.Lock()

    def request(self) -> None:
        with self._lock:
            if self._requested_at is None:
                self._requested_at = self.clock()
                logger.info("shutdown requested: the running job has %.0f s to finish, then goes back to the queue",
                            self.grace_s)  # fmt: skip

    def expired(self) -> bool:
        with self._lock:
            return self._requested_at is not None and self.clock() - self._requested_at >= self.grace_s
