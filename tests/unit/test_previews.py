"""Live previews: which steps make one, and the latent-to-RGB map (ComfyUI's SD 1.x factors)."""

import numpy as np
import pytest
import torch

from core.execution.previews import preview_steps
from core.pipeline.preview import LATENT_RGB_FACTORS, latents_to_rgb, preview_frame_indices
from core.video.encode import encode_animated_webp


@pytest.mark.parametrize(
    ("total_steps", "fraction", "steps"),
    [
        (25, 0.1, {2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24}),  # round(2.5) = 2: every second step
        (40, 0.1, {4, 8, 12, 16, 20, 24, 28, 32, 36}),  # never the last step: decoding follows at once
        (10, 0.25, {2, 4, 6, 8}),  # round(2.5) = 2
        (3, 0.1, {1, 2}),
        (25, 0.0, set()),  # 0 turns previews off
        (1, 0.1, set()),
    ],
)
def test_preview_steps_are_every_fraction_of_the_steps_but_the_last(
    total_steps: int, fraction: float, steps: set[int]
) -> None:
    assert preview_steps(total_steps, fraction) == steps


def test_preview_frames_are_spread_over_the_video_leaving_out_the_reference() -> None:
    assert preview_frame_indices(73, 4) == [1, 25, 48, 72]
    assert preview_frame_indices(3, 4) == [1, 2]
    assert preview_frame_indices(1, 4) == [0]


def test_latents_map_to_rgb_with_the_published_factors() -> None:
    latent = torch.zeros(1, 2, 4, 1, 1)
    latent[0, 1, :, 0, 0] = torch.tensor([0.5, -0.25, 1.0, 0.1])
    (pixel,) = latents_to_rgb(latent, upscale=1)[0, 0]  # frame 1 (frame 0 is the reference)
    factors = np.array(LATENT_RGB_FACTORS)
    expected = np.clip((np.array([0.5, -0.25, 1.0, 0.1]) @ factors + 1) / 2, 0, 1) * 255
    np.testing.assert_array_equal(pixel, np.round(expected).astype(np.uint8))
    assert factors[0].tolist() == [0.3512, 0.2297, 0.3227] and factors[3].tolist() == [-0.2120, -0.2616, -0.7177]


def test_a_preview_is_a_small_looping_animated_webp() -> None:
    frames = latents_to_rgb(torch.randn(1, 9, 4, 9, 16))
    assert frames.shape == (4, 18, 32, 3)
    data = encode_animated_webp(frames)
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP" and b"ANIM" in data[:64]
    assert len(data) < 20_000
