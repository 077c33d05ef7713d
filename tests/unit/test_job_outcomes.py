"""The one table from what a job's stage raised to how the job ends, and ``attempt`` around a stage."""

import pytest
import redis

from core.contract.transitions import InvalidTransitionError
from core.errors import JobCanceledError, JobTimeoutError, NotAVideoError, StorageError
from core.execution.outcome import (
    INTERNAL_ERROR_MESSAGE,
    Failed,
    HandedBack,
    LeftToLease,
    NoLongerOurs,
    Outcome,
    WorkerStoppingError,
    attempt,
    outcome_of,
)


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (JobCanceledError("job j was canceled or taken over"), NoLongerOurs("job j was canceled or taken over")),
        (InvalidTransitionError("canceled -> failed"), NoLongerOurs("canceled -> failed")),
        (WorkerStoppingError("job j: the worker is shutting down"), HandedBack()),
        (NotAVideoError("drive.mp4 is not a video"), Failed("input_not_video", "drive.mp4 is not a video")),
        (StorageError("bucket gone"), Failed("storage_error", "bucket gone")),
        (JobTimeoutError("past its deadline"), Failed("timeout", "past its deadline")),
        (redis.ConnectionError("Connection refused"), LeftToLease()),
        (redis.TimeoutError("Timeout reading from socket"), LeftToLease()),
    ],
    ids=lambda value: type(value).__name__,
)
def test_outcome_of_maps_each_error_to_its_outcome(error: Exception, outcome: Outcome) -> None:
    assert outcome_of(error) == outcome


def test_outcome_of_an_unexpected_error_is_internal_error_without_its_detail_but_keeps_it_for_the_log() -> None:
    error = RuntimeError("secret detail from deep inside")
    outcome = outcome_of(error)
    assert outcome == Failed("internal_error", INTERNAL_ERROR_MESSAGE)
    assert isinstance(outcome, Failed) and outcome.unexpected is error and "secret" not in outcome.message


def test_attempt_returns_the_value_or_the_outcome_and_lets_interpreter_exits_through() -> None:
    assert attempt(lambda: 42) == 42

    def refused() -> int:
        raise JobCanceledError("job j was canceled or taken over")

    assert attempt(refused) == NoLongerOurs("job j was canceled or taken over")

    def interrupted() -> int:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        attempt(interrupted)
