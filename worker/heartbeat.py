"""The worker's heartbeat: a thread that keeps ``mm:worker:{name}`` alive in Redis while the process runs.

The gateway's /readyz counts live heartbeats; a worker that dies stops writing and expires.
"""

import logging
import threading
from typing import Any

from core.jobs.queue import HEARTBEAT_TTL_S
from core.jobs.store import JobStore

logger = logging.getLogger(__name__)


class Heartbeat:
    """Writes ``info`` under the worker's name every ``HEARTBEAT_TTL_S / 3`` seconds until stopped."""

    def __init__(self, store: JobStore, name: str, info: dict[str, Any], *, ttl_s: int = HEARTBEAT_TTL_S) -> None:
        self.store, self.name, self.info, self.ttl_s = store, name, info, ttl_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{name}", daemon=True)

    def start(self) -> None:
        self.store.record_heartbeat(self.name, self.info, ttl_s=self.ttl_s)  # ready as soon as we return
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self.store.remove_heartbeat(self.name)
        except Exception:
            logger.warning("worker %s: could not remove its heartbeat (it expires in %d s)", self.name, self.ttl_s)

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.store.record_heartbeat(self.name, self.info, ttl_s=self.ttl_s)
            except Exception:  # a Redis blip must not kill the thread; the next beat tries again
                logger.warning("worker %s: heartbeat failed", self.name, exc_info=True)
