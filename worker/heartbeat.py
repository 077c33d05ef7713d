"""The worker's liveness: a heartbeat thread that keeps its ``core.jobs.heartbeats`` entry alive while the
process runs, and a watchdog that ends the process when its Celery consumer stops consuming.

The gateway's /readyz counts live heartbeats; a worker that dies stops writing and expires.
"""

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from core.contract.queues import HEARTBEAT_TTL_S
from core.jobs.heartbeats import WorkerHeartbeats

logger = logging.getLogger(__name__)

CONSUMER_STALLED_EXIT_CODE = 75  # EX_TEMPFAIL: a fresh process fixes it


class Heartbeat:
    """Writes ``info`` under the worker's name every ``HEARTBEAT_TTL_S / 3`` seconds until stopped."""

    def __init__(
        self, heartbeats: WorkerHeartbeats, name: str, info: dict[str, Any], *, ttl_s: int = HEARTBEAT_TTL_S
    ) -> None:
        self.heartbeats, self.name, self.info, self.ttl_s = heartbeats, name, info, ttl_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{name}", daemon=True)

    def start(self) -> None:
        self.heartbeats.record(self.name, self.info, ttl_s=self.ttl_s)  # ready as soon as we return
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self.heartbeats.remove(self.name)
        except Exception:
            logger.warning("worker %s: could not remove its heartbeat (it expires in %d s)", self.name, self.ttl_s)

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.heartbeats.record(self.name, self.info, ttl_s=self.ttl_s)
            except Exception:  # a Redis blip must not kill the thread; the next beat tries again
                logger.warning("worker %s: heartbeat failed", self.name, exc_info=True)


class ConsumerWatchdog:
    """Calls ``on_stall`` when messages wait for this worker but it runs no task, at every check for ``stall_after_s``.

    Why: the heartbeat proves that the process runs, not that it consumes. After Redis is replaced or
    restarted while a task finishes, Celery's consumer can stop for good while the process and its
    heartbeat live on: the late ack of the finished task fails (or, without a socket timeout, blocks
    forever) on the dead connection, kombu keeps counting the message as unacknowledged, and with a
    prefetch of one the consumer never asks Redis for another message; nothing raises, so Celery
    does not reconnect (RELIABILITY.md, "Redis restarted or replaced"). The process cannot be trusted
    to notice, so this thread watches the symptom instead: a healthy idle consumer takes a waiting
    message within milliseconds, so one that leaves messages waiting while it runs no task, check
    after check, has stalled. It is not judged while Celery is reconnecting (``consumer_stopped``
    until ``consumer_started``) or while Redis cannot be read: Celery's own retries handle those.
    """

    def __init__(
        self,
        *,
        waiting_messages: Callable[[], int],
        is_busy: Callable[[], bool],
        on_stall: Callable[[float, int], None],
        stall_after_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """
        Args:
            waiting_messages: messages in the broker lists of this worker's queues (raises RedisError
                when Redis cannot be read).
            is_busy: whether a task is reserved or running in this process.
            on_stall: called once with the seconds stalled and the messages waiting.
        """
        self.waiting_messages, self.is_busy, self.on_stall = waiting_messages, is_busy, on_stall
        self.stall_after_s, self.clock = stall_after_s, clock
        self._consuming = False
        self._stalled_since: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="consumer-watchdog", daemon=True)

    def consumer_started(self) -> None:
        """Celery's consumer is connected and consuming (again): watch it, from now."""
        self._stalled_since, self._consuming = None, True
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()

    def consumer_stopped(self) -> None:
        """Celery's consumer is reconnecting or shutting down: not a stall."""
        self._consuming, self._stalled_since = False, None

    def stop(self) -> None:
        self.consumer_stopped()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def check(self) -> bool:
        """One look at the consumer; True (after calling ``on_stall``) when it has stalled."""
        try:
            waiting = self.waiting_messages() if self._consuming and not self.is_busy() else 0
        except redis.RedisError:
            waiting = 0  # Redis is away: the consumer's own reconnects are in charge
        if waiting == 0 or not self._consuming:
            self._stalled_since = None
            return False
        now = self.clock()
        if self._stalled_since is None:
            self._stalled_since = now
        if now - self._stalled_since < self.stall_after_s:
            return False
        self.on_stall(now - self._stalled_since, waiting)
        return True

    def _watch(self) -> None:
        while not self._stop.wait(self.stall_after_s / 4):
            if self.check():
                return


def exit_stalled_worker(heartbeats: WorkerHeartbeats, name: str) -> Callable[[float, int], None]:
    """``on_stall`` for a worker process: withdraw its heartbeat and exit with CONSUMER_STALLED_EXIT_CODE.

    No task is running (that is part of a stall), so nothing in hand is lost: a job whose result is
    still being stored in the background keeps its lease until it lapses, and the reaper runs it
    again. ``os._exit``, because a stalled consumer may hold the main thread in a socket read that
    ignores SIGTERM. Compose and Kubernetes start a fresh worker; ``mimicmotion up`` stops and says so.
    """

    def on_stall(stalled_s: float, waiting: int) -> None:
        logger.error(
            "worker %s: %d message(s) have waited %.0f s in its queues while its Celery consumer ran no task: it "
            "has stopped consuming (see RELIABILITY.md, Redis restarted or replaced); exiting with %d so that a "
            "fresh process takes over", name, waiting, stalled_s, CONSUMER_STALLED_EXIT_CODE,
        )  # fmt: skip
        try:
            heartbeats.remove(name)  # /readyz stops counting it now, not in HEARTBEAT_TTL_S
        except redis.RedisError:
            logger.warning("worker %s: could not remove its heartbeat (it expires in %d s)", name, HEARTBEAT_TTL_S)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(CONSUMER_STALLED_EXIT_CODE)

    return on_stall
