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
