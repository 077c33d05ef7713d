"""Reads of the Celery broker's Redis (kombu keeps each queue as a list named after it, no prefix).

Floor 3: this does I/O, so it lives here rather than with the queue names in ``core.contract.queues``.
"""

from typing import cast

import redis


def broker_queue_length(client: redis.Redis, queue: str) -> int:
    """Messages waiting in a queue on the Redis broker.

    Reserved and running late-ack messages are not in the list (they sit in kombu's unacked hash).
    """
    return int(cast(int, client.llen(queue)))
