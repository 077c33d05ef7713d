"""bench/gpu_check.py's runner with real child processes: timeouts end the whole process group, the budget holds.

The parts here are small Python commands; the real parts need CUDA and run in ``make gpu-check``.
"""

import json
import os
import signal
from pathlib import Path

import pytest

from bench import gpu_check
from bench.gpu_check import Part, failed_part, run_check
from tests.support.processes import wait_for


def _lines(text: str) -> dict[str, list[str]]:
    return {"lines": text.splitlines()}


def _gone(pid: int) -> bool:
    """No such process, or a zombie waiting for its reaper: either way it runs no more."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status


def test_a_part_past_its_timeout_is_stopped_with_its_children(tmp_path: Path) -> None:
    # Like bench.worker's stack: the part starts a child of its own; the timeout must end that one too.
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(300)\n"
    )
    [result] = run_check((Part("sleeper", ["-c", code], 3, _lines),), budget_s=120)
    assert result["timed_out"] and result["results"] == {"lines": ["started"]}
    assert 3 <= result["seconds"] < 60 and failed_part(result)
    wait_for(lambda: _gone(int(pid_file.read_text())), timeout_s=30, message="the part's child to end")


def test_a_stopped_part_whose_child_keeps_the_pipe_comes_back_with_what_it_printed(tmp_path: Path) -> None:
    # A child in a session of its own survives the group's kill and holds stdout open: the runner
    # stops reading after a while instead of waiting for that child.
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(300)\n"
    )
    try:
        [result] = run_check((Part("leaky", ["-c", code], 3, _lines),), budget_s=120)
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert result["timed_out"] and result["results"] == {"lines": ["started"]}
    assert result["seconds"] < 3 + 30 + 10 + 10  # timeout, SIGTERM wait, reading, slack


def test_parts_report_exit_status_and_output_and_only_best_effort_timeouts_pass() -> None:
    parts = (
        Part("ok", ["-c", "print('one'); print('two')"], 30, _lines),
        Part("fails", ["-c", "import sys; print('bad'); sys.exit(3)"], 30, _lines),
        Part("slow_but_optional", ["-c", "import time; time.sleep(300)"], 2, _lines, optional=True),
    )
    ok, fails, optional = run_check(parts, budget_s=120)
    assert (ok["rc"], ok["results"], failed_part(ok)) == (0, {"lines": ["one", "two"]}, False)
    assert (fails["rc"], fails["output_tail"], failed_part(fails)) == (3, "bad\n", True)
    assert optional["timed_out"] and not failed_part(optional)


def test_parts_past_the_budget_are_skipped_not_run() -> None:
    marker = "import sys; sys.exit('this part must not run')"
    [skipped] = run_check((Part("late", ["-c", marker], 30, _lines),), budget_s=0)
    assert skipped["skipped"].endswith("s left") and "rc" not in skipped and not failed_part(skipped)


def test_without_cuda_the_report_says_so_and_nothing_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The device probe stands in for a machine without CUDA, so this holds on a GPU host too.
    monkeypatch.setattr(gpu_check, "torch_and_device", lambda: ("2.13.0+cpu", None))
    monkeypatch.setattr(gpu_check, "PARTS", (Part("must_not_run", ["-c", "raise SystemExit(9)"], 30, _lines),))
    out = tmp_path / "report" / "gpu-check.json"
    assert gpu_check.main(["--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["cuda"] is False and report["parts"] == []
    assert report["reason"] == "no CUDA device: torch 2.13.0+cpu sees none; nothing ran"
