"""How a claimed job's run ended: one type per way, and the one table from errors to those ways.

Each stage's exception becomes an outcome here; ``final_write.py`` then records it (transition,
webhook event, log line). No I/O.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import redis

from core.contract.params import ModelParams
from core.contract.records import JobOutput
from core.contract.transitions import InvalidTransitionError
from core.errors import JobCanceledError, MimicMotionError

T = TypeVar("T")

INTERNAL_ERROR_MESSAGE = "the worker hit an unexpected error; it has been logged"


class WorkerStoppingError(Exception):
    """Raised between denoising steps when the worker's shutdown grace is over."""


class Outcome:
    """How a claimed job's run ended; each subclass is one way."""


@dataclass(frozen=True)
class Succeeded(Outcome):
    output: JobOutput
    params: ModelParams  # as run, with the seed actually used


@dataclass(frozen=True)
class Failed(Outcome):
    code: str
    message: str  # what the job's record says
    # Set for an unexpected error: its traceback goes to the log only, never to the job's record.
    unexpected: BaseException | None = field(default=None, compare=False)


@dataclass(frozen=True)
class NoLongerOurs(Outcome):
    """Canceled, or taken over after a lapsed lease: another party owns the job's record now."""

    reason: str


@dataclass(frozen=True)
class HandedBack(Outcome):
    """The worker is shutting down: the job goes back to the queue (running -> queued)."""


@dataclass(frozen=True)
class LeftToLease(Outcome):
    """The job store is unreachable, so nothing can be recorded: the lease lapses and the reaper hands
    the job back (or fails it as worker_lost)."""

    cause: BaseException | None = field(default=None, compare=False)


def outcome_of(exc: Exception) -> Outcome:
    """The one table from what a stage or a final write raised to how the job ends."""
    match exc:
        case JobCanceledError() | InvalidTransitionError():
            return NoLongerOurs(str(exc))
        case WorkerStoppingError():
            return HandedBack()
        case MimicMotionError():
            return Failed(exc.code, exc.message)
        case redis.RedisError():  # a Redis blip never fails a job as internal_error
            return LeftToLease(cause=exc)
        case _:
            return Failed("internal_error", INTERNAL_ERROR_MESSAGE, unexpected=exc)


def attempt(step: Callable[[], T]) -> T | Outcome:
    """``step()``, or the outcome its exception calls for (a BaseException, e.g. interpreter exit, passes)."""
    try:
        return step()
    except Exception as exc:
        return outcome_of(exc)
