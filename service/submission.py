"""Creating a job: the per-key queue limit, idempotency, the stored record and the hand-off to the GPU queue.

A job whose message never reached the broker is marked failed at once, never left queued.
"""

import logging
from uuid import uuid4

from core.errors import IdempotencyConflictError, JobNotFoundError, QueueLimitError
from core.jobs.idempotency import IdempotencyRecords
from core.jobs.params import JobParams, with_seed
from core.jobs.records import Job, JobError, JobStatus
from core.jobs.store import JobStore
from core.jobs.transitions import InvalidTransitionError
from service.errors import QueueUnavailableError
from service.idempotency import fingerprint
from service.queue import TaskSender
from service.schemas import JobCreate

logger = logging.getLogger(__name__)


def new_job(body: JobCreate, owner: str) -> Job:
    """A queued job with an unguessable id and its seed resolved, so the caller sees the seed used."""
    return Job(
        id=uuid4().hex,
        owner=owner,
        image_url=body.image_url,
        video_url=body.video_url,
        params=with_seed(body.params or JobParams()),
        metadata=body.metadata,
        webhook_url=body.webhook_url,
        webhook_events=list(body.webhook_events),
    )


def submit_job(store: JobStore, sender: TaskSender, job: Job, *, max_queued: int) -> Job:
    """Store ``job`` and enqueue it; on a broker failure, fail the job and raise QueueUnavailableError."""
    store.create(job, max_queued_per_owner=max_queued)
    try:
        sender.send_animate(job.id)
    except Exception as exc:  # any broker failure: the job must not wait for a message that never left
        logger.exception("job %s: could not enqueue", job.id)
        try:
            store.transition(
                job.id,
                JobStatus.failed,
                expected=[JobStatus.queued],
                error=JobError(code="enqueue_failed", message="the job could not be queued; submit it again"),
            )
        except InvalidTransitionError:
            return store.get(job.id)  # a worker got the message after all and took the job
        raise QueueUnavailableError("the task queue is unavailable; the job was not queued, try again") from exc
    return job


def create_job(
    store: JobStore,
    sender: TaskSender,
    body: JobCreate,
    *,
    owner: str,
    max_queued: int,
    idempotency_key: str | None = None,
) -> Job:
    """Create and enqueue a job for ``owner``; with ``idempotency_key``, a repeat returns the first job."""
    job = new_job(body, owner)
    if idempotency_key is None:
        return submit_job(store, sender, job, max_queued=max_queued)
    records = IdempotencyRecords(store)
    bound_id = records.claim(owner, idempotency_key, fingerprint(body), job.id)
    if bound_id != job.id:
        try:
            return store.get(bound_id, owner=owner)
        except JobNotFoundError:
            raise IdempotencyConflictError("the first request with this key is still being handled") from None
    try:
        return submit_job(store, sender, job, max_queued=max_queued)
    except (QueueLimitError, QueueUnavailableError):
        records.release(owner, idempotency_key)  # nothing usable was created: let a retry try again
        raise
