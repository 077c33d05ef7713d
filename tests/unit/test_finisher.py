"""BackgroundFinisher: one job's finishing work at a time, in submission order; a raising one never stops it."""

import threading

import pytest

from worker.finisher import BackgroundFinisher


def test_drain_reports_work_still_running_after_its_timeout_then_waits_for_it() -> None:
    finisher, gate, done = BackgroundFinisher(), threading.Event(), threading.Event()
    finisher.submit("a", lambda: (gate.wait(timeout=30), done.set()))

    assert finisher.drain(timeout_s=0.01) is False
    gate.set()
    assert finisher.drain() is True and done.is_set()
    assert finisher.drain(timeout_s=0) is True  # nothing pending


def test_work_runs_in_order_on_one_thread_and_an_error_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    finisher, ran = BackgroundFinisher(), list[tuple[str, str]]()

    def boom() -> None:
        raise RuntimeError("upload exploded")

    finisher.submit("a", lambda: ran.append(("a", threading.current_thread().name)))
    finisher.submit("b", boom)
    finisher.submit("c", lambda: ran.append(("c", threading.current_thread().name)))  # after b's error
    assert finisher.drain(timeout_s=30)

    assert [job for job, _ in ran] == ["a", "c"]
    assert len({thread for _, thread in ran}) == 1 and ran[0][1] != threading.current_thread().name
    assert any("job b: finishing raised" in message for message in caplog.messages)
