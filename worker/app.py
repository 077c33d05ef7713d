"""create_celery: the worker's Celery app, configured from core.jobs.queue (as the gateway's client is).

Pool: solo, one process per GPU. The task runs in the worker's main thread, so the models loaded
at start stay warm on the device and nothing forks after CUDA is initialised ("Cannot re-initialize
CUDA in forked subprocess"). Prefork would buy hard time limits and child recycling, at the cost of
loading the models in a child within ``worker_proc_alive_timeout``; run_job keeps its own lease
instead, and the job store, not the pool, decides what runs (service-practices §5.2).
"""

from celery import Celery

from core.jobs.queue import celery_config
from core.settings import Settings


def create_celery(settings: Settings) -> Celery:
    """A Celery app for the GPU queue: prefetch 1, late ack, solo pool, one task at a time."""
    app = Celery("mimicmotion", set_as_current=True)
    app.conf.update(celery_config(settings.redis_url))
    app.conf.update(worker_pool="solo", worker_concurrency=1, worker_send_task_events=False)
    app.conf.update(include=["worker.tasks"])
    return app
