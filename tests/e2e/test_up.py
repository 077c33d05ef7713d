"""The README's first command: `mimicmotion up` on a fresh machine serves a job end to end.

A fresh data_dir, no model configured (so `up` makes the tiny one), nothing listening at the
configured Redis port (so `up` starts redis-server), then `mimicmotion submit --wait --out`.
"""

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from core.video.decode import read_video_frames
from tests.support.input_files import InputServer
from tests.support.media import moving_person_frames, person_image, write_image, write_video
from tests.support.processes import http_ok, mimicmotion, service_env, wait_for
from tests.support.redis_server import free_port

pytestmark = pytest.mark.e2e

UP_LINE = re.compile(r"MimicMotion is up at (\S+) \(gateway pid (\d+), worker pid (\d+)\)")
REDIS_LINE = re.compile(r"started redis-server on \S+ \(pid (\d+)")


def is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_up_serves_a_submitted_job_and_stops_everything_on_ctrl_c(
    tmp_path: Path, input_servers: Callable[[int], InputServer]
) -> None:
    inputs_url = input_servers(9).url  # 9 driving frames: 5 samples at stride 2
    data_dir = tmp_path / "fresh"
    env = service_env({
        "MIMICMOTION_DATA_DIR": str(data_dir), "MIMICMOTION_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "MIMICMOTION_DEVICE": "cpu",
    })  # fmt: skip
    with mimicmotion("up", ["up", "--port", str(free_port())], env, tmp_path) as up:

        def up_line() -> re.Match[str] | None:
            assert up.is_running(), f"up exited early\n{up.logs()}"
            return UP_LINE.search(up.log_path.read_text(errors="replace"))

        match = wait_for(up_line, timeout_s=120, message="`mimicmotion up` to be ready", interval_s=0.1)
        base_url, gateway_pid, worker_pid = match.group(1), int(match.group(2)), int(match.group(3))
        log = up.log_path.read_text(errors="replace")
        assert "TINY RANDOM model" in log and "127.0.0.0/8" in log
        redis_match = REDIS_LINE.search(log)
        assert redis_match is not None, log
        assert (data_dir / "tiny-model").is_dir() and (data_dir / "redis").is_dir()
        assert http_ok(f"{base_url}/readyz")

        out = tmp_path / "result.mp4"
        submit = subprocess.run(
            [
                sys.executable, "-m", "cli.main", "submit", "--url", base_url,
                "--image", f"{inputs_url}/person.png", "--video", f"{inputs_url}/drive.mp4", "--wait",
                "--out", str(out), "--resolution", "128", "--num-inference-steps", "2", "--tile-size", "8",
                "--tile-overlap", "2", "--fps", "8", "--seed", "3", "--poll-s", "0.2", "--timeout-s", "120",
            ],
            env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert submit.returncode == 0, f"{submit.stdout}\n{submit.stderr}\n{up.logs()}"
        assert "succeeded" in submit.stdout and "seed 3" in submit.stdout
        video = read_video_frames(out, sample_stride=1)
        assert video.frames.shape == (5, 192, 128, 3)  # 9 frames at stride 2

        # Local paths instead of URLs: submit uploads them to the gateway first.
        local_out = tmp_path / "local.mp4"
        image_path, video_path = tmp_path / "local-person.png", tmp_path / "local-drive.mp4"
        write_image(image_path, person_image(200, 150, seed=4))
        write_video(video_path, moving_person_frames(5, 96, 128, seed=5), fps=24)
        local = subprocess.run(
            [
                sys.executable, "-m", "cli.main", "submit", "--url", base_url, "--image", str(image_path),
                "--video", str(video_path), "--wait", "--out", str(local_out), "--resolution", "128",
                "--num-inference-steps", "2", "--tile-size", "4", "--tile-overlap", "1", "--poll-s", "0.2",
            ],
            env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert local.returncode == 0, f"{local.stdout}\n{local.stderr}\n{up.logs()}"
        assert read_video_frames(local_out, sample_stride=1).frames.shape == (3, 192, 128, 3)

        assert up.stop(signal.SIGINT, timeout_s=60) == 0, up.logs()
    for pid in (gateway_pid, worker_pid, int(redis_match.group(1))):
        assert is_gone(pid), f"pid {pid} outlived `up`\n{up.logs()}"
    assert not http_ok(f"{base_url}/healthz")
