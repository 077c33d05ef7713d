import pytest

from core.contract.records import TERMINAL_STATUSES, JobStatus
from core.contract.transitions import ALLOWED_TRANSITIONS, InvalidTransitionError, check_transition


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
@pytest.mark.parametrize("target", list(JobStatus))
def test_check_transition_refuses_leaving_a_terminal_state(terminal: JobStatus, target: JobStatus) -> None:
    with pytest.raises(InvalidTransitionError, match=f"a {terminal.value} job cannot become {target.value}"):
        check_transition(terminal, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("queued", "running"), ("queued", "canceled"), ("queued", "failed"),
        ("running", "succeeded"), ("running", "failed"), ("running", "canceled"), ("running", "queued"),
    ],
)  # fmt: skip
def test_check_transition_allows_the_lifecycle(current: str, target: str) -> None:
    check_transition(JobStatus(current), JobStatus(target))


def test_queued_cannot_succeed_without_running() -> None:
    with pytest.raises(InvalidTransitionError, match="queued job cannot become succeeded"):
        check_transition(JobStatus.queued, JobStatus.succeeded)


def test_every_status_has_a_row() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(JobStatus)
    assert all(status.is_terminal == (not ALLOWED_TRANSITIONS[status]) for status in JobStatus)
