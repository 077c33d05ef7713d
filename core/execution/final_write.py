"""A claimed job's final write: what each outcome records in the job store, and its log line.

A write the store refuses (the job was canceled during its upload, Redis went away) ends the job the
way that error calls for instead, through the same table (``outcome_of``).
"""

import logging
from collections.abc import Mapping

from core.contract.records import JobError, JobStatus
from core.contract.stages import Stage
from core.execution.events import JobEvents
from core.execution.outcome import Failed, HandedBack, LeftToLease, NoLongerOurs, Outcome, Succeeded, outcome_of
from core.execution.progress import stage_progress
from core.jobs.stage_stats import StageStatistics
from core.jobs.store import JobStore

logger = logging.getLogger(__name__)


class FinalWrite:
    """Records one job's outcome: the transition, the webhook event, the stage statistics, the log line."""

    def __init__(self, store: JobStore, job_id: str, worker: str, events: JobEvents) -> None:
        self.store, self.job_id, self.worker, self.events = store, job_id, worker, events

    def record(self, outcome: Outcome, timings: Mapping[str, float]) -> None:
        """Record ``outcome`` with the seconds of the stages the job ran."""
        try:
            self._record(outcome, dict(timings))
        except Exception as exc:
            self._record(outcome_of(exc), dict(timings))

    def _record(self, outcome: Outcome, timings: dict[str, float]) -> None:
        job_id = self.job_id
        match outcome:
            case Succeeded(output=output, params=params):
                job = self.store.transition(
                    job_id, JobStatus.succeeded, worker=self.worker, output=output, params=params, timings=timings,
                    progress=stage_progress(Stage.uploading, 1, 1),
                )  # fmt: skip
                StageStatistics(self.store.db).record(timings)
                self.events.record(job, "job.succeeded")
                logger.info("job %s: succeeded (%s)", job_id, ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
            case Failed(code=code, message=message, unexpected=unexpected):
                if unexpected is not None:
                    logger.error("job %s: unexpected error", job_id, exc_info=unexpected)  # the traceback: log only
                logger.warning("job %s: failed [%s] %s", job_id, code, message)
                job = self.store.transition(
                    job_id, JobStatus.failed, worker=self.worker, error=JobError(code=code, message=message),
                    timings=timings,
                )  # fmt: skip
                self.events.record(job, "job.failed")
            case HandedBack():  # the caller re-sends the job's message
                self.store.transition(job_id, JobStatus.queued, worker=self.worker)
                logger.warning("job %s: worker shutting down; back in the queue", job_id)
            case NoLongerOurs(reason=reason):
                logger.info("job %s: stopped, no longer ours (%s)", job_id, reason)
            case LeftToLease(cause=cause):
                logger.warning("job %s: job store unavailable; left to its lease", job_id, exc_info=cause)
            case _:
                raise TypeError(f"not an outcome: {outcome!r}")
