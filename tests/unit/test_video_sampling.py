"""Frame sampling: the Wan-Animate rate formula, and the frame-by-frame decisions that reproduce it."""

import numpy as np
import pytest

from core.video.sampling import RateSampling, StrideSampling, rate_frame_indices


def test_rate_frame_indices_follow_the_reference_formula_by_hand() -> None:
    # 10 frames at 30 fps sampled at 20 fps: int(10 / 30 * 20) = 6 samples, k -> round(1.5 k) half to even.
    assert rate_frame_indices(10, 30.0, 20.0).tolist() == [0, 2, 3, 4, 6, 8]
    # Upsampling repeats: 4 frames at 10 fps to 25 fps: 10 samples, round(0.4 k), the last clipped to 3.
    assert rate_frame_indices(4, 10.0, 25.0).tolist() == [0, 0, 1, 1, 2, 2, 2, 3, 3, 4 - 1]
    assert rate_frame_indices(7, 30.0, 30.0).tolist() == list(range(7))


def _kept(sampling: RateSampling | StrideSampling, num_frames: int) -> list[int]:
    kept = [index for index in range(num_frames) for _ in range(sampling.copies(index))]
    return kept[: sampling.num_samples(num_frames)]


@pytest.mark.parametrize(
    ("source_fps", "fps"),
    [(30.0, 30.0), (30.0, 20.0), (29.97, 30.0), (24.0, 30.0), (60.0, 30.0), (10.0, 25.0), (30.0, 7.0)],
)
@pytest.mark.parametrize("num_frames", [1, 2, 9, 10, 77, 301])
def test_rate_sampling_frame_by_frame_gives_the_reference_indices(
    source_fps: float, fps: float, num_frames: int
) -> None:
    sampling = RateSampling(source_fps, fps)
    kept = [index for index in range(num_frames) for _ in range(sampling.copies(index))]
    expected = rate_frame_indices(num_frames, source_fps, fps).tolist()
    # Kept while decoding: the expected ones, at most one surplus, and short only of the clipped tail.
    assert len(kept) <= len(expected) + sampling.overshoot
    assert kept[: len(expected)] == expected[: len(kept)]
    assert all(index == num_frames - 1 for index in expected[len(kept) :])


def test_stride_sampling_keeps_every_stride_th_frame_once() -> None:
    sampling = StrideSampling(3)
    assert _kept(sampling, 10) == [0, 3, 6, 9] and sampling.num_samples(10) == 4


def test_rate_sampling_refuses_rates_that_are_not_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateSampling(0.0, 30.0)
    with pytest.raises(ValueError, match="positive"):
        rate_frame_indices(10, 30.0, 0.0)


def test_rate_frame_indices_dtype_and_order() -> None:
    indices = rate_frame_indices(100, 29.97, 30.0)
    assert indices.dtype == np.int64 and (np.diff(indices) >= 0).all() and indices[-1] <= 99
