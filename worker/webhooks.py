"""The webhook worker: a Celery worker on the ``webhooks`` queue plus the scheduler that feeds it.

GPU workers and the gateway only record events (``core.jobs.deliveries``); this process sends them.
The scheduler thread moves due deliveries from Redis's due set onto the queue (retries wait in the
due set, not in Celery ETAs, which Redis re-delivers after the visibility timeout), and the task
forwards each delivery id to ``core.execution.webhook_sender.deliver_webhook``. Torch-free.
"""

import logging
import os
import random
import socket
import threading

from celery import Celery, shared_task

from core.contract.queues import DELIVER_WEBHOOK_TASK, WEBHOOK_QUEUE, celery_config
from core.contract.records import utc_now
from core.execution import webhook_sender
from core.execution.webhook_sender import WebhookDeps
from core.jobs.deliveries import Deliveries
from core.jobs.keys import KeyedRedis
from core.settings import Settings
from core.storage import create_storage
from worker.app import consumer_watchdog_step

logger = logging.getLogger(__name__)

SCHEDULER_POLL_S = 0.2  # how soon a recorded event leaves; one small Redis call per poll
CONCURRENCY = 8  # deliveries in flight per process: receivers are slow, the work is waiting on sockets

_deps: WebhookDeps | None = None


def configure(deps: WebhookDeps) -> None:
    """Give the tasks of this process their dependencies (the entry point does it before consuming)."""
    global _deps
    _deps = deps


def webhook_deps(settings: Settings) -> WebhookDeps:
    db = KeyedRedis.from_settings(settings)
    return WebhookDeps(deliveries=Deliveries(db), storage=create_storage(settings), settings=settings,
                       rng=random.Random())  # fmt: skip


@shared_task(name=DELIVER_WEBHOOK_TASK, ignore_result=True)
def deliver_webhook(delivery_id: str) -> None:
    """One attempt at one delivery; safe to run twice (the job's lock and the record's state decide)."""
    if _deps is None:
        raise RuntimeError("webhook worker not configured: run_webhook_worker() calls configure() at start")
    webhook_sender.deliver_webhook(delivery_id, _deps)


def create_webhook_celery(settings: Settings) -> Celery:
    """A Celery app for the webhooks queue: a thread pool, since attempts wait on the network."""
    app = Celery("mimicmotion-webhooks", set_as_current=True)
    app.conf.update(
        celery_config(
            settings.redis_url, sentinels=settings.redis_sentinels, sentinel_master=settings.redis_sentinel_master
        )
    )
    # A webhook attempt lasts at most webhook_timeout_s; the due set, not a long visibility timeout,
    # brings back the few whose worker died.
    app.conf.update(
        task_default_queue=WEBHOOK_QUEUE, worker_pool="threads", worker_concurrency=CONCURRENCY,
        worker_prefetch_multiplier=4, worker_send_task_events=False, include=["worker.webhooks"],
    )  # fmt: skip
    # Each ack that fails on a dead connection keeps one of the prefetch slots; once all are kept the
    # consumer stalls as a GPU worker's does, and the same watchdog exits the process (code 75).
    app.steps["consumer"].add(consumer_watchdog_step(settings))
    return app


class DueScheduler:
    """A thread that sends each due delivery id to the webhooks queue once per due time."""

    def __init__(self, app: Celery, deliveries: Deliveries, settings: Settings, *, poll_s: float = SCHEDULER_POLL_S):
        self.app, self.deliveries, self.poll_s = app, deliveries, poll_s
        # A taken id comes due again after this long unless its task reschedules or finishes it.
        self.lease_s = 2 * settings.webhook_timeout_s + 30
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def send_due(self) -> int:
        ids = self.deliveries.claim_due(now=utc_now(), lease_s=self.lease_s)
        for delivery_id in ids:
            self.app.send_task(DELIVER_WEBHOOK_TASK, args=[delivery_id], queue=WEBHOOK_QUEUE)
        return len(ids)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.send_due()
            except Exception:  # Redis or the broker blipped: the ids stay in the due set for the next poll
                logger.warning("webhook scheduler: could not send due deliveries", exc_info=True)


def default_name() -> str:
    return f"webhooks{os.getpid()}@{socket.gethostname()}"


def run_webhook_worker(settings: Settings, name: str) -> int:
    """Consume the webhooks queue and feed it from the due set until shut down (SIGTERM, SIGINT)."""
    deps = webhook_deps(settings)
    configure(deps)
    app = create_webhook_celery(settings)
    scheduler = DueScheduler(app, deps.deliveries, settings)
    celery_worker = app.Worker(
        hostname=name, pool_cls="threads", concurrency=CONCURRENCY, queues=[WEBHOOK_QUEUE],
        without_gossip=True, without_mingle=True, loglevel=settings.log_level.upper(),
    )  # fmt: skip
    if not settings.webhook_secret.get_secret_value():
        logger.warning("MIMICMOTION_WEBHOOK_SECRET is not set: the gateway refuses jobs that ask for webhooks")
    scheduler.start()
    logger.info("webhook worker %s: ready (queue %s)", name, WEBHOOK_QUEUE)
    try:
        celery_worker.start()
    finally:
        scheduler.stop()
    return int(celery_worker.exitcode or 0)
