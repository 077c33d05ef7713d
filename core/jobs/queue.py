"""Task and queue names and the Celery configuration, as plain data (no Celery import).

The gateway sends tasks by name with a send-only client built from this module; the worker's
Celery app is configured from the same dict, so the two cannot disagree.
"""

from typing import Any

ANIMATE_TASK = "mimicmotion.animate"
GPU_QUEUE = "gpu"
DELIVER_WEBHOOK_TASK = "mimicmotion.deliver_webhook"
WEBHOOK_QUEUE = "webhooks"  # consumed by `mimicmotion webhook-worker`, never by a GPU worker
LEASE_S = 60  # a running job's lease; the worker renews it every LEASE_S / 4
HEARTBEAT_TTL_S = 30  # a worker that has not written its heartbeat for this long is gone


def parse_queue_routes(value: str) -> list[tuple[int, str]]:
    """``"0=gpu,768=gpu-80gb"`` -> [(0, "gpu"), (768, "gpu-80gb")], sorted by minimum resolution.

    Raises:
        ValueError: a pair is not ``MIN_RESOLUTION=QUEUE`` with a non-negative integer and a name.
    """
    routes = []
    for pair in filter(None, (part.strip() for part in value.split(","))):
        threshold, sep, queue = pair.partition("=")
        if not sep or not threshold.strip().isdigit() or not queue.strip() or queue.strip() == WEBHOOK_QUEUE:
            raise ValueError(f"queue route {pair!r} is not MIN_RESOLUTION=QUEUE (e.g. 768=gpu-80gb)")
        routes.append((int(threshold), queue.strip()))
    return sorted(routes)


def queue_for(resolution: int, routes: list[tuple[int, str]]) -> str:
    """The GPU-class queue of a job: the route with the highest minimum resolution it reaches."""
    queue = GPU_QUEUE
    for threshold, name in routes:
        if resolution >= threshold:
            queue = name
    return queue


def broker_queue_length(redis_client: Any, queue: str) -> int:
    """Messages waiting in a queue on the Redis broker (kombu keeps each queue as a list named after it).

    Reserved and running late-ack messages are not in the list (they sit in kombu's unacked hash).
    """
    return int(redis_client.llen(queue))


def celery_config(redis_url: str, *, visibility_timeout_s: int = 6 * 3600) -> dict[str, Any]:
    """Settings for a GPU job queue: one job per process, acknowledged only when it is done."""
    return {
        "broker_url": redis_url,
        "result_backend": None,  # the job store in Redis is the record, not Celery's results
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": GPU_QUEUE,
        "task_routes": {ANIMATE_TASK: {"queue": GPU_QUEUE}, DELIVER_WEBHOOK_TASK: {"queue": WEBHOOK_QUEUE}},
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
        # Late ack on Redis re-delivers any message unacknowledged this long; keep it above the
        # longest job. Redelivery is harmless anyway: a task only runs a job it can claim.
        "broker_transport_options": {"visibility_timeout": visibility_timeout_s},
    }
