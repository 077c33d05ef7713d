"""Sending a webhook event again (``POST /jobs/{id}/webhooks/{delivery_id}/redeliver``), as Stripe and Svix let
their users: the same event and ``webhook-id``, one more attempt on the record, owner-scoped and rate-limited."""

import time

from core.errors import JobNotFoundError
from core.jobs.deliveries import Deliveries, Delivery
from core.jobs.store import JobStore

REDELIVERIES_PER_MINUTE = 10


def redeliver(store: JobStore, job_id: str, delivery_id: str, *, owner: str) -> Delivery:
    """Make the owner's finished delivery due again.

    Raises:
        JobNotFoundError: no such job or delivery, or another owner's.
        InvalidTransitionError: the delivery is still being delivered (pending).
        RedeliveryLimitError: more than REDELIVERIES_PER_MINUTE this minute.
    """
    store.get(job_id, owner=owner)
    deliveries = Deliveries(store.db)
    delivery = deliveries.get(delivery_id)
    if delivery is None or delivery.job_id != job_id:
        raise JobNotFoundError(f"job {job_id} has no webhook delivery {delivery_id}")
    deliveries.count_redelivery(owner, limit=REDELIVERIES_PER_MINUTE, now=time.time())
    return deliveries.redeliver(delivery)
