"""``mimicmotion worker --gpus``: the supervisor pins, restarts and stops real child processes.

The children are small Python stand-ins for ``mimicmotion worker --gpu N`` (loading models would
add nothing here): each records its start and CUDA_VISIBLE_DEVICES, then exits as told.
"""

import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from tests.support.processes import wait_for
from worker.heartbeat import CONSUMER_STALLED_EXIT_CODE
from worker.main import supervise_gpus

# argv: record dir, gpu, exit codes of its 1st, 2nd, ... start ("wait": block until a signal).
CHILD = """
import os, signal, sys
from pathlib import Path
record, gpu, plan = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
starts = len(list(record.glob(f"gpu{gpu}-*")))
partial = record / f".gpu{gpu}-{starts}"  # renamed when whole, so a reader never sees half a line
partial.write_text(f"{os.environ['CUDA_VISIBLE_DEVICES']} {os.getpid()}")
partial.rename(record / f"gpu{gpu}-{starts}")
action = plan[min(starts, len(plan) - 1)]
if action == "wait":
    signal.pause()
sys.exit(int(action))
"""


def _starts(record: Path, gpu: int) -> list[str]:
    """CUDA_VISIBLE_DEVICES of each start of the child for ``gpu``."""
    return [path.read_text().split()[0] for path in sorted(record.glob(f"gpu{gpu}-*"))]


def _stand_in(record: Path, plans: dict[int, list[str]]) -> Callable[[int], list[str]]:
    return lambda gpu: [sys.executable, "-c", CHILD, str(record), str(gpu), *plans[gpu]]


def test_a_stalled_child_is_started_again_on_its_gpu(tmp_path: Path) -> None:
    plans = {0: [str(CONSUMER_STALLED_EXIT_CODE), "0"], 1: ["0"]}
    code = supervise_gpus([0, 1], [], dict(os.environ), command_for=_stand_in(tmp_path, plans), poll_s=0.02)

    assert code == 0
    assert _starts(tmp_path, 0) == ["0", "0"]  # restarted once, still pinned to GPU 0
    assert _starts(tmp_path, 1) == ["1"]


def test_a_child_killed_by_a_signal_is_started_again(tmp_path: Path) -> None:
    plans = {0: ["wait", "0"]}
    killer = threading.Thread(target=lambda: _kill_first_start(tmp_path))
    killer.start()
    code = supervise_gpus([0], [], dict(os.environ), command_for=_stand_in(tmp_path, plans), poll_s=0.02)
    killer.join()

    assert code == 0 and len(_starts(tmp_path, 0)) == 2


def _kill_first_start(record: Path) -> None:
    # Like the OOM killer: SIGKILL from outside, which the supervisor did not forward.
    wait_for(lambda: _starts(record, 0), timeout_s=30, message="the child to start")
    os.kill(int((record / "gpu0-0").read_text().split()[1]), signal.SIGKILL)


def test_an_error_exit_is_final(tmp_path: Path) -> None:
    plans = {0: ["3", "0"], 1: ["0"]}
    code = supervise_gpus([0, 1], [], dict(os.environ), command_for=_stand_in(tmp_path, plans), poll_s=0.02)

    assert code == 3
    assert len(_starts(tmp_path, 0)) == 1  # a configuration or model error would only repeat


def test_sigterm_is_forwarded_and_stopped_children_stay_stopped(tmp_path: Path) -> None:
    plans = {0: ["wait"], 1: ["wait"]}

    def stop_when_started() -> None:
        wait_for(lambda: _starts(tmp_path, 0) and _starts(tmp_path, 1), timeout_s=30, message="both children")
        os.kill(os.getpid(), signal.SIGTERM)  # as an orchestrator stops the container

    stopper = threading.Thread(target=stop_when_started)
    stopper.start()
    code = supervise_gpus([0, 1], [], dict(os.environ), command_for=_stand_in(tmp_path, plans), poll_s=0.02)
    stopper.join()

    assert code == signal.SIGTERM  # both died of the forwarded SIGTERM and were not restarted
    assert len(_starts(tmp_path, 0)) == 1 and len(_starts(tmp_path, 1)) == 1
