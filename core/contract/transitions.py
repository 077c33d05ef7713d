"""The job state machine: which status may follow which. Terminal states have no successor."""

from core.contract.records import JobStatus
from core.errors import MimicMotionError

ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.queued: frozenset({JobStatus.running, JobStatus.canceled, JobStatus.failed}),
    # running -> queued: a lost worker's job is handed back to the queue for another attempt.
    JobStatus.running: frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.canceled, JobStatus.queued}),
    JobStatus.succeeded: frozenset(),
    JobStatus.failed: frozenset(),
    JobStatus.canceled: frozenset(),
}


class InvalidTransitionError(MimicMotionError):
    code = "invalid_transition"


def check_transition(current: JobStatus, target: JobStatus) -> None:
    """Raise InvalidTransitionError unless ``current -> target`` is allowed."""
    if target not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransitionError(f"a {current.value} job cannot become {target.value}")
