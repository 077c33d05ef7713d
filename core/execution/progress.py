"""A running job's progress: each stage's share of the whole, throttled writes, job.progress webhooks
and the deadline check (made wherever progress is reported, so at every stage and step).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from core.contract.records import Job, Progress
from core.contract.stages import Stage
from core.errors import JobCanceledError, JobTimeoutError
from core.execution.events import JobEvents
from core.jobs.store import JobStore
from core.log_format import bind_log_context

# Share of the whole job each stage spans, for ``progress.fraction`` (denoising dominates on a GPU).
STAGE_SPANS: dict[Stage, tuple[float, float]] = {
    Stage.fetching: (0.0, 0.05), Stage.pose: (0.05, 0.12), Stage.conditioning: (0.12, 0.15),
    Stage.denoising: (0.15, 0.85), Stage.decoding: (0.85, 0.92), Stage.encoding: (0.92, 0.97),
    Stage.uploading: (0.97, 1.0),
}  # fmt: skip


def stage_progress(stage: Stage, step: int, total_steps: int) -> Progress:
    """``step`` of ``total_steps`` into ``stage``, with its fraction of the whole job."""
    start, end = STAGE_SPANS[stage]
    fraction = start + (end - start) * (step / total_steps if total_steps else 0.0)
    return Progress(stage=stage, step=step, total_steps=total_steps, fraction=round(fraction, 4))


@dataclass
class Throttle:
    """Passes at most once per ``min_interval_s``, and only once ``value`` grew by ``min_growth`` since."""

    min_interval_s: float
    clock: Callable[[], float]
    min_growth: float = 0.0
    _last_time: float = field(default=-math.inf, init=False)
    _last_value: float = field(default=0.0, init=False)

    def passes(self, value: float = 0.0, *, force: bool = False) -> bool:
        now = self.clock()
        if not force and (now - self._last_time < self.min_interval_s or value - self._last_value < self.min_growth):
            return False
        self._last_time, self._last_value = now, value
        return True


class ProgressReporter:
    """Writes one job's progress to the store and records its job.progress webhooks, both throttled."""

    def __init__(
        self,
        job: Job,
        store: JobStore,
        worker: str,
        events: JobEvents,
        *,
        clock: Callable[[], float],
        wall_clock: Callable[[], datetime],
        min_interval_s: float,
        webhook_interval_s: float,
        webhook_min_fraction: float,
    ) -> None:
        self.job, self.store, self.worker, self.events, self.wall_clock = job, store, worker, events, wall_clock
        self._writes = Throttle(min_interval_s, clock)
        # A job sends at most 1 / webhook_min_fraction progress webhooks however long it runs.
        self._webhooks = Throttle(webhook_interval_s, clock, min_growth=webhook_min_fraction)

    def start(self, stage: Stage) -> None:
        """Report the start of ``stage``; always written."""
        self.report(stage, 0, 1, force=True)

    def report(self, stage: Stage, step: int, total_steps: int, *, force: bool = False) -> None:
        """Check the deadline, then write progress unless the last write was too recent.

        Raises:
            JobTimeoutError: the job's deadline has passed.
            JobCanceledError: the job is no longer this worker's running job.
        """
        bind_log_context(stage=stage.value)  # this job's log lines name the stage from here on
        self.check_deadline()
        if not self._writes.passes(force=force):
            return
        job = self.store.update_running(self.job.id, self.worker, progress=stage_progress(stage, step, total_steps))
        if job is None:
            raise JobCanceledError(f"job {self.job.id} was canceled or taken over")
        written = job.progress
        if written is not None and "job.progress" in job.webhook_events and self._webhooks.passes(written.fraction):
            self.events.record(job, "job.progress")

    def check_deadline(self) -> None:
        """Raise ``JobTimeoutError`` once the wall clock reaches the job's deadline."""
        deadline = self.job.deadline_at
        if deadline is not None and self.wall_clock() >= deadline:
            raise JobTimeoutError(f"the job did not finish by its deadline, {deadline.isoformat()} (timeout_s)")
