"""Celery tasks: thin interfaces that forward ids to core (no business logic here)."""

from celery import shared_task
from celery.exceptions import Reject

from core.contract.queues import ANIMATE_TASK
from core.contract.records import JobStatus
from core.execution.run import run_job
from worker.models_cache import worker_deps


@shared_task(name=ANIMATE_TASK, ignore_result=True)
def animate(job_id: str) -> None:
    """Run one animation job; redelivery-safe because run_job starts with a guarded claim."""
    deps = worker_deps()
    run_job(job_id, deps=deps)
    if deps.must_stop() and deps.store.get(job_id).status is JobStatus.queued:
        # Handed back at shutdown: the message goes back to its queue for another worker.
        raise Reject(f"job {job_id} handed back at shutdown", requeue=True)
