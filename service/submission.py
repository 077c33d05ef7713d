"""Creating a job: checks against the server's limits, idempotency, the stored record and the hand-off
to the GPU queue.

A job whose message never reached the broker is marked failed at once, never left queued.
"""

import logging
from collections.abc import Sequence
from datetime import timedelta
from uuid import uuid4

from fastapi.exceptions import RequestValidationError

from core.contract.params import PARAMS_BY_MODEL, with_seed
from core.contract.queues import QueueRoute, job_queue
from core.contract.records import Job, JobError, JobStatus, utc_now
from core.contract.transitions import InvalidTransitionError
from core.contract.uploads import MediaKind, upload_id_of
from core.errors import (
    ForbiddenAddressError,
    IdempotencyConflictError,
    InputFetchError,
    InvalidUploadError,
    JobNotFoundError,
    QueueLimitError,
    UnsupportedUrlError,
    UploadNotFoundError,
)
from core.jobs.idempotency import IdempotencyRecords
from core.jobs.store import JobStore
from core.jobs.uploads import Uploads
from core.network.url_guard import vet_url
from core.settings import Settings
from service.errors import QueueUnavailableError
from service.idempotency import fingerprint
from service.queue import TaskSender
from service.schemas import JobCreate

logger = logging.getLogger(__name__)


def check_against_settings(body: JobCreate, settings: Settings) -> None:
    """Refuse, as a 422 naming the field, what the schema cannot know: the server's limits and webhook setup.

    The webhook URL's host is checked here only when it is an address; names are resolved and
    checked at every delivery (DNS may answer differently by then).
    """
    problems: list[tuple[str, str]] = []
    if body.model not in settings.models:
        served = ", ".join(settings.models)
        problems.append(("model", f"{body.model} is not served here (this server serves: {served}; see GET /models)"))
    if body.timeout_s is not None and body.timeout_s > settings.max_job_timeout_s:
        problems.append(("timeout_s", f"must be at most {settings.max_job_timeout_s} (this server's maximum)"))
    if body.webhook_url is not None:
        if not settings.webhook_secret.get_secret_value():
            problems.append(("webhook_url", "webhooks are not configured on this server (MIMICMOTION_WEBHOOK_SECRET)"))
        else:
            problem = _webhook_url_problem(body.webhook_url, settings)
            if problem is not None:
                problems.append(("webhook_url", problem))
    if problems:
        raise RequestValidationError(
            [{"loc": ("body", field), "msg": message, "type": "value_error"} for field, message in problems]
        )


def _webhook_url_problem(url: str, settings: Settings) -> str | None:
    def no_dns(host: str, port: int) -> list[str]:
        raise OSError("not resolved at submission")

    try:
        vet_url(url, allowed_networks=settings.fetch_allowed_networks, resolver=no_dns, label="webhook")
    except (ForbiddenAddressError, UnsupportedUrlError) as exc:
        return exc.message
    except InputFetchError:
        pass  # a host name: checked when delivering
    return None


# An upload a job uses is kept this long past the job's deadline: the job ends by then, retries included.
UPLOAD_PIN_SLACK_S = 3600


def pin_uploads(uploads: Uploads, job: Job) -> None:
    """Check the job's ``upload://`` inputs (the owner's, ready, the right kind) and keep them until it ends.

    Raises:
        RequestValidationError: a 422 naming the field, for an unknown, expired, deleted, pending or another
            key's upload, or an image where a video belongs.
    """
    assert job.deadline_at is not None
    until = job.deadline_at + timedelta(seconds=UPLOAD_PIN_SLACK_S)
    problems: list[tuple[str, str]] = []
    inputs = (("image_url", job.image_url, MediaKind.image), ("video_url", job.video_url, MediaKind.video))
    for field, url, kind in inputs:
        upload_id = upload_id_of(url)
        if upload_id is None:
            continue
        try:
            upload = uploads.pin(upload_id, owner=job.owner, until=until)
        except UploadNotFoundError:
            problems.append((field, f"no upload {upload_id}: unknown, expired or deleted"))
        except InvalidUploadError as exc:
            problems.append((field, exc.message))
        else:
            if upload.kind is not kind:
                problems.append((field, f"upload {upload_id} is {upload.kind and upload.kind.value}, not {kind.value}"))
    if problems:
        raise RequestValidationError(
            [{"loc": ("body", field), "msg": message, "type": "value_error"} for field, message in problems]
        )


def new_job(body: JobCreate, owner: str, *, max_timeout_s: int, queue_routes: Sequence[QueueRoute] = ()) -> Job:
    """A queued job with an unguessable id, its seed and deadline resolved, so the caller sees both.

    The job's queue is its model's; MimicMotion's GPU class follows its resolution (``queue_routes``, see
    core.contract.queues).
    """
    created_at = utc_now()
    params = with_seed(body.params or PARAMS_BY_MODEL[body.model]())
    return Job(
        id=uuid4().hex,
        owner=owner,
        created_at=created_at,
        deadline_at=created_at + timedelta(seconds=body.timeout_s or max_timeout_s),
        image_url=body.image_url,
        video_url=body.video_url,
        model=body.model,
        params=params,
        queue=job_queue(body.model, params, queue_routes),
        metadata=body.metadata,
        webhook_url=body.webhook_url,
        webhook_events=list(body.webhook_events),
    )


def submit_job(store: JobStore, sender: TaskSender, job: Job, *, max_queued: int) -> Job:
    """Store ``job`` and enqueue it; on a broker failure, fail the job and raise QueueUnavailableError."""
    store.create(job, max_queued_per_owner=max_queued)
    try:
        sender.send_animate(job.id, queue=job.queue)
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
    settings: Settings,
    idempotency_key: str | None = None,
) -> Job:
    """Create and enqueue a job for ``owner``; with ``idempotency_key``, a repeat returns the first job."""
    check_against_settings(body, settings)
    max_queued = settings.max_queued_jobs_per_key
    job = new_job(body, owner, max_timeout_s=settings.max_job_timeout_s, queue_routes=settings.queue_routes)
    pin_uploads(Uploads(store.db), job)
    if idempotency_key is None:
        return submit_job(store, sender, job, max_queued=max_queued)
    records = IdempotencyRecords(store.db)
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
