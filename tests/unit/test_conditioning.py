"""The reference-image pixel round trip (reference §4.0 step 8), pinned to the measured value sets."""

import numpy as np
import pytest
import torch

from core.pipeline.conditioning import round_trip_image

ALL_VALUES = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)


@pytest.mark.parametrize(
    ("dtype", "lowered"),
    [
        (torch.float16, [*range(1, 9), *range(18, 22), *range(36, 44)]),
        (torch.float32, list(range(1, 64))),
        (torch.bfloat16, list(range(1, 64))),  # measured here: the same set as float32
    ],
)
def test_round_trip_image_lowers_exactly_the_measured_values(dtype: torch.dtype, lowered: list[int]) -> None:
    result = round_trip_image(ALL_VALUES, dtype)
    assert result.dtype == np.uint8 and result.shape == ALL_VALUES.shape
    expected = np.arange(256)
    expected[lowered] -= 1
    assert np.array_equal(result[..., 0].ravel(), expected)
    assert np.array_equal(result[..., 0], result[..., 2])
