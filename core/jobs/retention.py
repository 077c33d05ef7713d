"""Local storage retention: a job's result files under local storage go when its record does.

S3 users give the bucket a lifecycle rule; with local storage nothing else would ever delete a result.
A job's record expires ``job_retention_s`` after the job ends (core.jobs.store), so a job folder whose
record is gone, and that nothing wrote to for a while, holds results nobody can reach: it is deleted.
Every worker's reaper runs this at most every ``interval_s``.
"""

import logging
import time
from collections.abc import Callable
from pathlib import Path

from core.contract.records import job_files_prefix
from core.errors import JobNotFoundError
from core.jobs.store import JobStore
from core.storage import LocalStorage

logger = logging.getLogger(__name__)

MIN_AGE_S = 3600  # a folder touched within the last hour may belong to a job whose record is being written


def sweep_local_results(
    store: JobStore, storage: LocalStorage, *, now: float, min_age_s: float = MIN_AGE_S
) -> list[str]:
    """Delete the folders of jobs with no record left; returns their job ids."""
    jobs_root = storage.root / "jobs"
    if not jobs_root.is_dir():
        return []
    swept = []
    for folder in jobs_root.iterdir():
        if not folder.is_dir() or now - _newest_mtime(folder) < min_age_s:
            continue
        try:
            store.get(folder.name)
            continue  # the job is still on record: so are its results
        except JobNotFoundError:
            pass
        storage.delete_prefix(job_files_prefix(folder.name))
        swept.append(folder.name)
    if swept:
        logger.info("local retention: deleted the results of %d expired jobs", len(swept))
    return swept


def _newest_mtime(folder: Path) -> float:
    files = [path for path in folder.rglob("*") if path.is_file()]
    return max((path.stat().st_mtime for path in files), default=folder.stat().st_mtime)


class LocalResultsRetention:
    """``sweep_local_results`` at most every ``interval_s`` (the reaper calls ``__call__`` on every pass)."""

    def __init__(
        self, store: JobStore, storage: LocalStorage, *, interval_s: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.store, self.storage, self.interval_s, self.clock = store, storage, interval_s, clock
        self._last = float("-inf")

    def __call__(self) -> None:
        now = self.clock()
        if now - self._last >= self.interval_s:
            self._last = now
            sweep_local_results(self.store, self.storage, now=now)
