"""A send-only task queue client: the gateway hands job ids to the GPU queue by task name.

Built from ``core.contract.queues.celery_config`` (the worker's Celery app uses the same dict), and it
never imports ``worker/``: the gateway sends ``ANIMATE_TASK`` by name.
"""

from typing import Protocol

from celery import Celery

from core.contract.queues import ANIMATE_TASK, GPU_QUEUE, celery_config
from core.settings import Settings


class TaskSender(Protocol):
    def send_animate(self, job_id: str, *, queue: str = GPU_QUEUE) -> None:
        """Hand ``job_id`` to the workers of ``queue``; raise when the broker cannot take it."""
        ...


class CeleryTaskSender:
    """Sends ``ANIMATE_TASK`` messages through a Celery client that runs no tasks itself."""

    def __init__(self, celery: Celery) -> None:
        self.celery = celery

    def send_animate(self, job_id: str, *, queue: str = GPU_QUEUE) -> None:
        self.celery.send_task(ANIMATE_TASK, args=[job_id], queue=queue)


def create_task_sender(settings: Settings) -> CeleryTaskSender:
    celery = Celery("mimicmotion-gateway", set_as_current=False)
    celery.conf.update(celery_config(settings.redis_url, sentinels=settings.redis_sentinels,
                                     sentinel_master=settings.redis_sentinel_master))
    # Fail a POST within seconds when the broker is down rather than retrying for long.
    celery.conf.update(
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
    )
    return CeleryTaskSender(celery)
