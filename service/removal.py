"""Removing a job's data: ``DELETE /jobs/{id}`` cancels the job if it is unfinished, marks the record, then
deletes every file stored under the job's folder (all attempts' results).

The record is marked before the files go, so no response minted after that holds a URL to a file about to
vanish; a storage failure leaves it marked, and a repeated DELETE deletes again. A worker still uploading
for the canceled job fails its fenced final write and removes its own files (core.execution.final_write).
"""

import contextlib
import logging

from core.contract.records import Job, job_files_prefix
from core.contract.transitions import InvalidTransitionError
from core.jobs.store import JobStore
from core.storage import Storage
from service.cancellation import cancel_job

logger = logging.getLogger(__name__)


def remove_job_data(store: JobStore, storage: Storage, job_id: str, *, owner: str) -> Job:
    """Cancel (if needed) and delete the stored files of the owner's job; the small record stays.

    Raises:
        JobNotFoundError: no such job, or another owner's.
        StorageError: the files could not be deleted now (the record already says removed; try again).
    """
    job = store.get(job_id, owner=owner)
    if not job.status.is_terminal:
        with contextlib.suppress(InvalidTransitionError):  # it finished meanwhile
            cancel_job(store, job_id, owner=owner)
    job = store.mark_data_removed(job_id, owner=owner)
    deleted = storage.delete_prefix(job_files_prefix(job_id))
    logger.info("job %s: data removed (%d files)", job_id, deleted)
    return job
