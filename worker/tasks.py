"""Celery tasks: thin interfaces that forward ids to core (no business logic here)."""

from celery import shared_task

from core.jobs.queue import ANIMATE_TASK
from core.jobs.run import run_job
from worker.models_cache import worker_deps


@shared_task(name=ANIMATE_TASK, ignore_result=True)
def animate(job_id: str) -> None:
    """Run one animation job; redelivery-safe because run_job starts with a guarded claim."""
    run_job(job_id, deps=worker_deps())
