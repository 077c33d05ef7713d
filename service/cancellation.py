"""Canceling a job: queued jobs never start; running ones stop at the next denoising step.

The worker notices because the cancel transition drops its lease (``core.execution.run`` checks the
lease after every step) and raises JobCanceledError there. The gateway records the job.canceled
webhook itself: the worker may never hear of a job canceled while queued.
"""

from core.contract.records import Job, JobStatus
from core.contract.transitions import InvalidTransitionError
from core.jobs.deliveries import Deliveries
from core.jobs.store import JobStore


def cancel_job(store: JobStore, job_id: str, *, owner: str) -> Job:
    """Cancel the owner's queued or running job.

    Raises:
        JobNotFoundError: no such job, or another owner's.
        InvalidTransitionError: the job has finished already.
    """
    store.get(job_id, owner=owner)
    try:
        job = store.transition(job_id, JobStatus.canceled, expected=[JobStatus.queued, JobStatus.running])
    except InvalidTransitionError:
        current = store.get(job_id).status.value
        raise InvalidTransitionError(
            f"job {job_id} has {current}; only queued or running jobs can be canceled"
        ) from None
    Deliveries(store.db).record_event(job, "job.canceled")
    return job
