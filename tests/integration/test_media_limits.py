"""Driving-video duration limit: from the header before decoding, and from frame timestamps while decoding."""

from pathlib import Path

import numpy as np
import pytest

from core.errors import InputTooLargeError
from core.video.decode import read_video_frames
from tests.support import media


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
