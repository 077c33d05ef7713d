"""Task and queue names and the Celery configuration, as plain data (no Celery import).

The gateway sends tasks by name with a send-only client built from this module; the worker's
Celery app is configured from the same dict, so the two cannot disagree.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from core.contract.ascii_numbers import parse_ascii_int
from core.contract.params import DEFAULT_MODEL, MODEL_NAMES, JobParams, ModelParams

ANIMATE_TASK = "mimicmotion.animate"
GPU_QUEUE = "gpu"
DELIVER_WEBHOOK_TASK = "mimicmotion.deliver_webhook"
WEBHOOK_QUEUE = "webhooks"  # consumed by `mimicmotion webhook-worker`, never by a GPU worker
LEASE_S = 60  # a running job's lease; the worker renews it every LEASE_S / 4
HEARTBEAT_TTL_S = 30  # a worker that has not written its heartbeat for this long is gone
BROKER_SOCKET_TIMEOUT_S = 10  # no broker command or connect waits longer (see celery_config)
BROKER_HEALTH_CHECK_INTERVAL_S = 10


# Not a GPU-class queue of MimicMotion's: the webhook queue, and the other models' own queues.
_RESERVED_QUEUES = frozenset({WEBHOOK_QUEUE, *(name for name in MODEL_NAMES if name != DEFAULT_MODEL)})


@dataclass(frozen=True, order=True)
class QueueRoute:
    """Jobs of at least ``min_resolution`` go to ``queue`` (unless a higher route also applies)."""

    min_resolution: int
    queue: str


def parse_queue_routes(value: str) -> list[QueueRoute]:
    """``"0=gpu,768=gpu-80gb"`` -> routes (0, "gpu"), (768, "gpu-80gb"), sorted by minimum resolution.

    Raises:
        ValueError: a pair is not ``MIN_RESOLUTION=QUEUE`` with a non-negative integer and a name.
    """
    routes = []
    for pair in filter(None, (part.strip() for part in value.split(","))):
        threshold, sep, queue = pair.partition("=")
        min_resolution = parse_ascii_int(threshold.strip())
        if not sep or min_resolution is None or not queue.strip() or queue.strip() in _RESERVED_QUEUES:
            raise ValueError(f"queue route {pair!r} is not MIN_RESOLUTION=QUEUE (e.g. 768=gpu-80gb)")
        routes.append(QueueRoute(min_resolution, queue.strip()))
    return sorted(routes)


def queue_for(resolution: int, routes: Sequence[QueueRoute]) -> str:
    """The GPU-class queue of a job: the route with the highest minimum resolution it reaches.

    ``routes`` are sorted by minimum resolution, as ``parse_queue_routes`` returns them.
    """
    queue = GPU_QUEUE
    for route in routes:
        if resolution >= route.min_resolution:
            queue = route.queue
    return queue


def model_queue(model: str) -> str:
    """The queue of a model's jobs when no resolution route applies: ``gpu`` for MimicMotion (the first
    model, so existing deployments keep their queue), the model's own name for every other model."""
    return GPU_QUEUE if model == DEFAULT_MODEL else model


def job_queue(model: str, params: ModelParams, routes: Sequence[QueueRoute]) -> str:
    """The queue a job is sent to: its model's, and for MimicMotion the resolution route it reaches.

    Each worker process serves one model, so models never share a queue: a queue's messages all need
    the same weights.
    """
    if model == DEFAULT_MODEL and isinstance(params, JobParams):
        return queue_for(params.resolution, routes)
    return model_queue(model)


def celery_config(
    redis_url: str,
    *,
    visibility_timeout_s: int = 6 * 3600,
    sentinels: Sequence[tuple[str, int]] = (),
    sentinel_master: str = "mymaster",
) -> dict[str, Any]:
    """Settings for a GPU job queue: one job per process, acknowledged only when it is done.

    With ``sentinels``, the broker is kombu's sentinel transport: it asks them for the master and, after a
    failover, reconnects to the promoted one (``redis_url`` then gives only the database and password).
    """
    broker_url, sentinel_options = redis_url, {}
    if sentinels:
        parts = urlsplit(redis_url)
        auth = f"{parts.username or ''}:{parts.password}@" if parts.password else ""
        database = parts.path.lstrip("/") or "0"
        broker_url = ";".join(f"sentinel://{auth}{host}:{port}/{database}" for host, port in sentinels)
        sentinel_options = {"master_name": sentinel_master}
    return {
        "broker_url": broker_url,
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
        "broker_transport_options": {
            # Late ack on Redis re-delivers any message unacknowledged this long; keep it above the
            # longest job. Redelivery is harmless anyway: a task only runs a job it can claim.
            "visibility_timeout": visibility_timeout_s,
            # kombu waits forever on a broker socket by default. When Redis is replaced (a new pod, a
            # failover) the old connections can stay half-open, and a worker's ack or the gateway's
            # publish then blocks for good. With a timeout they fail, and Celery reconnects or retries.
            # Consuming is unaffected: kombu sends BRPOP with a 1 s server timeout and reads it only
            # once the socket is readable.
            "socket_timeout": BROKER_SOCKET_TIMEOUT_S,
            "socket_connect_timeout": BROKER_SOCKET_TIMEOUT_S,
            "socket_keepalive": True,
            # Also how often kombu checks its idle BRPOP and pub/sub connections (default 25 s): a
            # half-open BRPOP connection is dropped and reopened within about 1 + 2 * 10 s.
            "health_check_interval": BROKER_HEALTH_CHECK_INTERVAL_S,
            **sentinel_options,
        },
    }
