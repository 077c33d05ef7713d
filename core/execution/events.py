"""A job's webhook events, recorded for the webhook worker; this process never sends HTTP itself."""

import logging

import redis

from core.contract.events import WebhookEvent
from core.contract.records import Job
from core.jobs.deliveries import Deliveries

logger = logging.getLogger(__name__)


class JobEvents:
    """Records events in the job store; a failed record is logged, never raised."""

    def __init__(self, deliveries: Deliveries) -> None:
        self.deliveries = deliveries

    def record(self, job: Job, event_type: WebhookEvent) -> None:
        try:
            self.deliveries.record_event(job, event_type)
        except redis.RedisError:  # the job's own record matters more than its notification
            logger.warning("job %s: could not record webhook event %s", job.id, event_type, exc_info=True)
