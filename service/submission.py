"""Creating a job: the per-key queue limit, idempotency, the stored record and the hand-off to the GPU queue.

A job whose message never reached the broker is marked failed at once, never left queued.
"""

import logging
from typing import cast
from uuid import uuid4

from core.errors import JobNotFoundError
from core.jobs.params import JobParams, with_seed
from core.jobs.records import Job, JobError, JobStatus
from core.jobs.store import JobStore
from core.jobs.transitions import InvalidTransitionError
from service.errors import QueueLimitError, QueueUnavailableError
from service.idempotency import IdempotencyConflictError, IdempotencyRecords, fingerprint
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


def count_queued(store: JobStore, owner: str) -> int:
    """The owner's queued jobs: the intersection of its job index with the queue (Redis >= 7)."""
    # Uses the store's own key builders, so key formats stay defined once in core (a
    # JobStore.count_queued(owner) method would be the proper home).
    return cast(int, store.redis.zintercard(2, [store._owner_key(owner), store._queued_key]))


def check_queue_limit(store: JobStore, owner: str, limit: int) -> None:
    if (queued := count_queued(store, owner)) >= limit:
        raise QueueLimitError(f"you have {queued} queued jobs; the limit per API key is {limit}")


def submit_job(store: JobStore, sender: TaskSender, job: Job) -> Job:
    """Store ``job`` and enqueue it; on a broker failure, fail the job and raise QueueUnavailableError."""
    store.create(job)
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
        check_queue_limit(store, owner, max_queued)
        return submit_job(store, sender, job)
    records = IdempotencyRecords(store)
    bound_id = records.claim(owner, idempotency_key, fingerprint(body), job.id)
    if bound_id != job.id:
        try:
            return store.get(bound_id, owner=owner)
        except JobNotFoundError:
            raise IdempotencyConflictError("the first request with this key is still being handled") from None
    try:
        check_queue_limit(store, owner, max_queued)
        return submit_job(store, sender, job)
    except (QueueLimitError, QueueUnavailableError):
        records.release(owner, idempotency_key)  # nothing usable was created: let a retry try again
        raise
