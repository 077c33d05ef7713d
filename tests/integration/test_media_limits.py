"""Driving-video limits: duration and decoded size, each from the header before decoding and again while
decoding; and the memory a decode holds (issue 19)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.errors import InputTooLargeError
from core.video.decode import read_video_frames
from tests.support import media
from tests.support.service_stack import REPO_ROOT


def _frames(num_frames: int) -> np.ndarray:
    return np.zeros((num_frames, 48, 64, 3), dtype=np.uint8)


def test_read_video_frames_refuses_a_video_longer_than_max_duration_from_its_header(tmp_path: Path) -> None:
    path = media.write_video(tmp_path / "long.mp4", _frames(20), fps=10)  # 2.0 s

    assert read_video_frames(path, sample_stride=1, max_duration_s=2.5).frames.shape[0] == 20
    with pytest.raises(InputTooLargeError, match=r"lasts 2\.00 s, longer than the limit of 1\.5 s"):
        read_video_frames(path, sample_stride=1, max_duration_s=1.5)


def test_read_video_frames_refuses_a_long_video_without_a_duration_while_decoding(tmp_path: Path) -> None:
    # A raw H.264 stream has no duration and no timestamps; FFmpeg reads it at 25 fps, so 20 frames
    # last 0.8 s, which the count of decoded frames finds out.
    path = media.write_video(tmp_path / "long.h264", _frames(20), fps=10, container="h264")

    assert read_video_frames(path, sample_stride=1, max_duration_s=0.8).frames.shape[0] == 20
    with pytest.raises(InputTooLargeError, match=r"lasts at least 0\.52 s, longer than the limit of 0\.5 s"):
        read_video_frames(path, sample_stride=1, max_duration_s=0.5)


CAP_BYTES = 8 * 2**20  # 36 frames of 320x240 (230,400 bytes each)


def test_read_video_frames_refuses_more_decoded_bytes_than_the_cap_from_its_header(tmp_path: Path) -> None:
    path = media.write_flat_video(tmp_path / "flat.mp4", 40, 240, 320)  # 40 x 230,400 bytes = 8.8 MiB

    with pytest.raises(InputTooLargeError, match=r"gives 40 frames of 320x240 at a frame stride of 1, 9 MiB decoded"):
        read_video_frames(path, sample_stride=1, max_decoded_bytes=CAP_BYTES)
    # What the stride drops is never held: every second frame is 20 samples, 4.4 MiB.
    assert read_video_frames(path, sample_stride=2, max_decoded_bytes=CAP_BYTES).frames.shape == (20, 240, 320, 3)


def test_read_video_frames_refuses_more_decoded_bytes_than_the_cap_while_decoding(tmp_path: Path) -> None:
    # A raw H.264 stream announces no frame count: the frames decoded find out, at the 37th.
    path = media.write_flat_video(tmp_path / "flat.h264", 40, 240, 320, container="h264")

    with pytest.raises(InputTooLargeError, match=r"gives at least 37 frames of 320x240 .* than the limit of 8 MiB"):
        read_video_frames(path, sample_stride=1, max_decoded_bytes=CAP_BYTES)
    assert read_video_frames(path, sample_stride=1, max_decoded_bytes=2 * CAP_BYTES).frames.shape[0] == 40


def test_read_video_frames_counts_what_the_caller_holds_per_frame_against_the_cap(tmp_path: Path) -> None:
    # 20 samples of 320x240 are 4.4 MiB alone; with a pose and an output frame of the same size each, 13 MiB.
    path = media.write_flat_video(tmp_path / "flat.mp4", 20, 240, 320)

    assert read_video_frames(path, sample_stride=1, max_decoded_bytes=CAP_BYTES).frames.shape[0] == 20
    with pytest.raises(InputTooLargeError, match=r"20 frames of 320x240 .* 13 MiB decoded with what the job holds"):
        read_video_frames(path, sample_stride=1, max_decoded_bytes=CAP_BYTES, held_bytes_per_frame=2 * 230_400)


PEAK_PROBE = """
import sys
from pathlib import Path
from core.video.decode import read_video_frames

def status(field):
    line = next(l for l in open("/proc/self/status") if l.startswith(field + ":"))
    return int(line.split()[1]) * 1024

read_video_frames(Path(sys.argv[1]), sample_stride=1)  # warm up FFmpeg and the allocator
before = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # VmHWM restarts from the current RSS
video = read_video_frames(Path(sys.argv[1]), sample_stride=1)
print(status("VmHWM") - before, video.frames.nbytes)
"""


def test_read_video_frames_peak_memory_is_the_frames_kept_not_twice_that(tmp_path: Path) -> None:
    # 100 frames of 640x480: 92 MB kept. Collecting a list and stacking it at the end held 184 MB at the peak.
    path = media.write_flat_video(tmp_path / "flat.mp4", 100, 480, 640)

    probe = subprocess.run(
        [sys.executable, "-c", PEAK_PROBE, str(path)], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT
    )

    assert probe.returncode == 0, probe.stderr
    growth, kept = (int(value) for value in probe.stdout.split())
    print(f"peak RSS growth {growth / 2**20:.0f} MiB for {kept / 2**20:.0f} MiB of frames kept")
    assert growth < 1.25 * kept + 16 * 2**20, (growth, kept)
