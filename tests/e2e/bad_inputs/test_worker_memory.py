"""The worker's memory for a decoded-size bomb, measured on the real worker process (issue 19).

A few kilobytes of flat H.264 frames without a frame count (so only the check while decoding can stop
it) once decoded whole, then were copied by np.stack: 62 MiB of frames held twice. The peak RSS
(VmHWM, restarted through /proc/PID/clear_refs just before the job) must now grow by at most the cap
(``max_decoded_video_bytes``, 8 MiB here) plus the decoder's own buffers.
"""

from pathlib import Path

import pytest

from tests.e2e.bad_inputs.job_cases import LIMITS, PARAMS
from tests.e2e.bad_inputs.world import World
from tests.support.service_stack import wait_for_terminal

pytestmark = pytest.mark.e2e

MIB = 2**20
DECODER_SLACK_BYTES = 24 * MIB  # FFmpeg's frame threads and one converted frame in flight


def _status_bytes(pid: int, field: str) -> int:
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith(f"{field}:"))
    return int(line.split()[1]) * 1024


def test_a_decoded_size_bomb_raises_the_workers_peak_memory_by_at_most_the_cap(world: World) -> None:
    wait_for_terminal(world.client, list(world.job_ids.values()), timeout_s=180, stack=world.stack)  # idle worker
    pid = world.worker_pid
    before = _status_bytes(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM restarts from the current RSS

    response = world.client.post("/jobs", json={
        "image_url": f"{world.inputs_url}/files/person.png",
        "video_url": f"{world.inputs_url}/files/bomb_without_count.h264",
        "params": PARAMS,
    })  # fmt: skip
    assert response.status_code == 202, response.text
    job = wait_for_terminal(world.client, [response.json()["id"]], timeout_s=90, stack=world.stack)
    growth = _status_bytes(pid, "VmHWM") - before

    cap = int(LIMITS["max_decoded_video_bytes"])
    print(f"worker peak RSS growth for the bomb: {growth / MIB:.1f} MiB (cap {cap / MIB:.0f} MiB)")
    assert growth < cap + DECODER_SLACK_BYTES, growth / MIB
    error = next(iter(job.values()))["error"] or {}
    assert error.get("code") == "input_too_large" and "at least 8 frames" in error["message"], job
