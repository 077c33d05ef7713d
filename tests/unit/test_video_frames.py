"""Reference §4.0 geometry (target size, cover resize, center crop) and the §7 frame stride."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import MediaError
from core.video.frames import (
    MAX_COVER_AREA_RATIO,
    center_crop,
    cover_size,
    frame_stride,
    prepare_reference_image,
    resize_and_crop,
    resize_bilinear,
    target_size,
)
from tests.support.media import person_image


@pytest.mark.parametrize(
    ("height", "width", "resolution", "expected"),
    [
        (300, 200, 576, (1024, 576)),  # portrait
        (200, 300, 576, (576, 1024)),  # landscape
        (256, 256, 576, (576, 1024)),  # square counts as landscape
        (300, 200, 512, (896, 512)),
        (200, 300, 512, (512, 896)),
        (300, 200, 768, (1344, 768)),
        (200, 300, 768, (768, 1344)),
    ],
)
def test_target_size_matches_reference_examples(
    height: int, width: int, resolution: int, expected: tuple[int, int]
) -> None:
    assert target_size(height, width, resolution) == expected


@pytest.mark.parametrize(
    ("size", "target", "expected"),
    [
        ((256, 192), (1024, 576), (1024, 768)),  # too wide for 9:16: height fits, width = ceil(1024 / (4/3))
        ((144, 176), (576, 1024), (838, 1024)),  # too tall for 16:9: width fits, height = ceil(837.8)
        ((2000, 500), (1024, 576), (2304, 576)),  # very tall: width fits
        ((576, 1024), (576, 1024), (576, 1024)),  # already the target
    ],
)
def test_cover_size_uses_the_ceil_rule(
    size: tuple[int, int], target: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert cover_size(*size, *target) == expected


def test_resize_bilinear_upsamples_with_half_pixel_centres() -> None:
    # align_corners=False: output x samples input at (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 (clamped)
    # -> 0, 63.75, 191.25, 255 -> rounded 0, 64, 191, 255.
    image = np.array([[[0] * 3, [255] * 3]], dtype=np.uint8)  # (1, 2, 3)
    resized = resize_bilinear(image, 1, 4)
    assert resized[0, :, 0].tolist() == [0, 64, 191, 255]


def test_resize_bilinear_downsamples_without_antialias_and_rounds_half_to_even() -> None:
    # 4 -> 2 samples at 0.5 and 2.5: the mean of neighbours only (antialias would blend 4 pixels),
    # 0.5 rounds to 0 and 4.5 rounds to 4 (torch.round is half to even).
    row = np.array([0, 1, 4, 5], dtype=np.uint8)
    image = np.repeat(row[None, :, None], 3, axis=2)  # (1, 4, 3)
    assert resize_bilinear(image, 1, 2)[0, :, 0].tolist() == [0, 4]


@pytest.mark.parametrize(
    ("excess", "expected_offset"),
    [(0, 0), (1, 0), (2, 1), (3, 2), (5, 2), (7, 4)],  # round(0.5)=0, round(1.5)=2, round(2.5)=2, round(3.5)=4
)
def test_center_crop_offsets_round_half_to_even(excess: int, expected_offset: int) -> None:
    rows = np.arange(10 + excess)[:, None, None].repeat(4, axis=1)  # row index as value, (10+excess, 4, 1)
    columns = np.arange(4 + excess)[None, :, None].repeat(10, axis=0)  # (10, 4+excess, 1)
    assert center_crop(rows, 10, 4)[0, 0, 0] == expected_offset
    assert center_crop(columns, 10, 4)[0, 0, 0] == expected_offset


def _reference_resize_and_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """§4.0 steps 3-4 written out directly with torch, as torchvision does them."""
    resize_height, resize_width = cover_size(image.shape[0], image.shape[1], height, width)
    pixels = torch.from_numpy(image).permute(2, 0, 1).float()[None]
    resized = F.interpolate(pixels, size=(resize_height, resize_width), mode="bilinear", align_corners=False)
    resized_u8 = torch.round(resized)[0].to(torch.uint8).permute(1, 2, 0).numpy()
    top, left = int(round((resize_height - height) / 2)), int(round((resize_width - width) / 2))
    return resized_u8[top : top + height, left : left + width]


@pytest.mark.parametrize(("size", "target"), [((61, 47), (96, 64)), ((47, 61), (64, 96)), ((33, 33), (40, 72))])
def test_resize_and_crop_equals_direct_torch_interpolate_and_round(
    size: tuple[int, int], target: tuple[int, int]
) -> None:
    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    result = resize_and_crop(image, *target)
    np.testing.assert_array_equal(result, _reference_resize_and_crop(image, *target))
    assert result.flags["C_CONTIGUOUS"]


@settings(max_examples=20, deadline=None)
@given(
    height=st.integers(1, 200),
    width=st.integers(1, 200),
    resolution=st.sampled_from([40, 64, 100, 128]),
)
def test_prepare_reference_image_gives_the_target_shape_or_refuses_extreme_aspect(
    height: int, width: int, resolution: int
) -> None:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    target = target_size(height, width, resolution)
    cover = cover_size(height, width, *target)
    if cover[0] * cover[1] > MAX_COVER_AREA_RATIO * target[0] * target[1]:
        with pytest.raises(MediaError, match="aspect ratio"):
            prepare_reference_image(image, resolution)
    else:
        assert prepare_reference_image(image, resolution).shape == (*target, 3)


def test_prepare_reference_image_refuses_a_thin_strip_before_resizing() -> None:
    # 1 x 40000 pixels passes read_image's pixel limit but would cover-resize to 576 x 23,040,000.
    with pytest.raises(MediaError, match=r"40000x1\) is too far from the 1024x576 output"):
        prepare_reference_image(np.zeros((1, 40000, 3), dtype=np.uint8), 576)


def test_prepare_reference_image_accepts_a_panorama_within_the_limit() -> None:
    # 1:8 landscape into 576x1024: cover is 576 x 4608, 4.5 target areas.
    assert prepare_reference_image(np.zeros((8, 64, 3), dtype=np.uint8), 576).shape == (576, 1024, 3)


def test_prepare_reference_image_of_a_portrait_person_is_1024_by_576() -> None:
    result = prepare_reference_image(person_image(256, 192), 576)
    assert result.shape == (1024, 576, 3) and result.dtype == np.uint8
    assert result.std() > 10  # the figure and texture survive the resize


def test_resize_and_crop_rejects_non_uint8_rgb() -> None:
    with pytest.raises(ValueError, match="uint8"):
        resize_and_crop(np.zeros((8, 8, 3), dtype=np.float32), 4, 4)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        resize_and_crop(np.zeros((8, 8), dtype=np.uint8), 4, 4)


@pytest.mark.parametrize(
    ("sample_stride", "fps", "expected"),
    [(2, 30.0, 2), (2, 60.0, 4), (2, 24.0, 2), (2, 47.9, 2), (2, 48.0, 4), (1, 120.0, 5), (3, 0.0, 3), (2, 29.97, 2)],
)
def test_frame_stride_scales_with_fps_over_24(sample_stride: int, fps: float, expected: int) -> None:
    assert frame_stride(sample_stride, fps) == expected


def test_frame_stride_rejects_zero() -> None:
    with pytest.raises(ValueError, match="sample_stride"):
        frame_stride(0, 30.0)
