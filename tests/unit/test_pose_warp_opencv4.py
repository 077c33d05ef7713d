"""The DWPose person crop, bit for bit as OpenCV 4.x's fixed-point bilinear warpAffine computes it.

The original ran opencv-python-headless 4.10.0.84; OpenCV 5 warps uint8 INTER_LINEAR with other kernels
and gets other crop pixels, hence other keypoints and flipped limb pixels (issue 20). The reference below
is an independent numpy transcription of OpenCV 4.x's modules/imgproc/src/imgwarp.cpp (cv::warpAffine,
WarpAffineInvoker, hal::warpAffineBlockline, initInterTab2D, remapBilinear with BORDER_CONSTANT), so any
OpenCV whose crop departs from 4.x arithmetic fails here rather than moving keypoints silently.
"""

import numpy as np
import pytest

from core.pose.keypoints import (
    PIXEL_MEAN,
    PIXEL_STD,
    bbox_center_scale,
    crop_affine,
    crop_person,
    fix_aspect_ratio,
    warp_crop,
)

INTER_BITS = 5  # sub-pixel bits of a sample position: a 32 x 32 weight table
INTER_TAB_SIZE = 1 << INTER_BITS
AB_BITS = 10  # fixed-point bits of the per-row and per-column matrix terms, max(10, INTER_BITS)
AB_SCALE = 1 << AB_BITS
ROUND_DELTA = AB_SCALE // INTER_TAB_SIZE // 2  # rounds the 10-bit position to the nearest 1/32 px
REMAP_COEF_BITS = 15  # the bilinear weights sum to 1 << 15
CASES = 120


def _cv_round(values: np.ndarray) -> np.ndarray:
    """saturate_cast<int>(double): round half to even (cvRound's lrint), saturated to int32."""
    return np.clip(np.rint(values), -(2**31), 2**31 - 1).astype(np.int64)


def _bilinear_weights() -> np.ndarray:
    """initInterTab2D(INTER_LINEAR, fixpt): (1024, 4) int weights of [S00, S01, S10, S11], index fy * 32 + fx."""
    fy, fx = np.meshgrid(np.arange(INTER_TAB_SIZE), np.arange(INTER_TAB_SIZE), indexing="ij")
    # (1 - fy/32)(1 - fx/32) * 32768 etc. are exact integers: 32 * (32 - fy) * (32 - fx) ...
    weights = np.stack([(32 - fy) * (32 - fx), (32 - fy) * fx, fy * (32 - fx), fy * fx], axis=-1).reshape(-1, 4) * 32
    # ... except at (0, 0): 32768 saturates to short 32767, and the sum fix-up (whose search window runs
    # past this 2x2 entry) adds the missing 1 to the S11 weight. Transcribed, though no uint8 output can
    # show it: v00 * 32767 + v11 still rounds to v00.
    weights[0] = [32767, 0, 0, 1]
    return weights.astype(np.int64)


def opencv4_warp_affine_bilinear(
    image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], border_value: int = 0
) -> np.ndarray:
    """cv2.warpAffine(image, matrix, size, flags=INTER_LINEAR, borderMode=BORDER_CONSTANT) of OpenCV 4.x, uint8."""
    m = [float(v) for v in np.asarray(matrix, dtype=np.float64).ravel()]
    # Not WARP_INVERSE_MAP: invert the forward matrix in double, in OpenCV's order of operations.
    det = m[0] * m[4] - m[1] * m[3]
    det = 1.0 / det if det != 0 else 0.0
    a11, a22 = m[4] * det, m[0] * det
    m[0], m[1], m[3], m[4] = a11, m[1] * -det, m[3] * -det, a22
    m[2], m[5] = -m[0] * m[2] - m[1] * m[5], -m[3] * m[2] - m[4] * m[5]

    width, height = size
    xs, ys = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
    adelta, bdelta = _cv_round(m[0] * xs * AB_SCALE), _cv_round(m[3] * xs * AB_SCALE)  # per column
    x0 = _cv_round((m[1] * ys + m[2]) * AB_SCALE) + ROUND_DELTA  # per row
    y0 = _cv_round((m[4] * ys + m[5]) * AB_SCALE) + ROUND_DELTA
    x_fixed = (x0[:, None] + adelta[None, :]) >> (AB_BITS - INTER_BITS)  # (h, w) positions in 1/32 px
    y_fixed = (y0[:, None] + bdelta[None, :]) >> (AB_BITS - INTER_BITS)
    sx = np.clip(x_fixed >> INTER_BITS, -32768, 32767)  # stored as short
    sy = np.clip(y_fixed >> INTER_BITS, -32768, 32767)
    weights = _bilinear_weights()[(y_fixed & (INTER_TAB_SIZE - 1)) * INTER_TAB_SIZE + (x_fixed & (INTER_TAB_SIZE - 1))]

    src_h, src_w = image.shape[:2]
    total = np.zeros((height, width, image.shape[2]), dtype=np.int64)
    for tap, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        row, col = sy + dy, sx + dx
        inside = (row >= 0) & (row < src_h) & (col >= 0) & (col < src_w)
        # BORDER_CONSTANT: a neighbour outside the source reads the border value.
        neighbours = image[np.clip(row, 0, src_h - 1), np.clip(col, 0, src_w - 1)].astype(np.int64)
        values = np.where(inside[..., None], neighbours, border_value)
        total += values * weights[..., tap, None]
    # FixedPtCast<int, uchar, 15>: add half, shift, saturate.
    return np.clip((total + (1 << (REMAP_COEF_BITS - 1))) >> REMAP_COEF_BITS, 0, 255).astype(np.uint8)


def _random_affine(rng: np.random.Generator) -> np.ndarray:
    """Scale, shear, rotation and a shift that puts much of the output outside the source (the border)."""
    linear = rng.normal(0.0, 0.6, (2, 2)) + np.eye(2) * rng.uniform(0.3, 2.5)
    shift = rng.normal(0.0, 40.0, (2, 1))
    return np.concatenate([linear, shift], axis=1)


def test_the_reference_reproduces_a_hand_computed_half_pixel_shift() -> None:
    # A shift by half a pixel right: each output is (a + b + 1) >> 1 of two neighbours, the last one
    # half border; the rows move by nothing. Guards the reference itself against a wrong table.
    image = np.array([[[10], [20], [31]], [[0], [255], [100]]], dtype=np.uint8)
    matrix = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, 0.0]])
    expected = np.array([[[15], [26], [16]], [[128], [178], [50]]], dtype=np.uint8)
    np.testing.assert_array_equal(opencv4_warp_affine_bilinear(image, matrix, (3, 2)), expected)


@pytest.mark.parametrize("matrix_dtype", [np.float64, np.float32])
def test_warp_crop_equals_opencv4_fixed_point_warp_on_random_images_and_matrices(matrix_dtype: type) -> None:
    rng = np.random.default_rng(20)
    for case in range(CASES):
        src_h, src_w = (int(v) for v in rng.integers(2, 120, 2))
        image = rng.integers(0, 256, (src_h, src_w, 3), dtype=np.uint8)
        matrix = _random_affine(rng).astype(matrix_dtype)
        size = (int(rng.integers(1, 160)), int(rng.integers(1, 160)))
        ours = warp_crop(image, matrix, size)
        expected = opencv4_warp_affine_bilinear(image, matrix, size)
        assert np.array_equal(ours, expected), f"case {case}: {np.count_nonzero(ours != expected)} values differ"


def test_crop_person_warps_like_opencv4_for_boxes_reaching_past_the_frame() -> None:
    # crop_affine's own matrices (float64 from float32 points), boxes partly outside: the border shows.
    rng = np.random.default_rng(21)
    input_size = (72, 96)  # the 3:4 of the 288 x 384 model, smaller to keep the test fast
    for case in range(40):
        image = rng.integers(0, 256, (int(rng.integers(40, 160)), int(rng.integers(40, 160)), 3), dtype=np.uint8)
        x1, y1 = rng.uniform(-30, 120, 2)
        box = np.array([x1, y1, x1 + rng.uniform(5, 140), y1 + rng.uniform(5, 140)])
        crop, center, scale = crop_person(image, box, input_size)

        expected_center, padded = bbox_center_scale(box)
        np.testing.assert_array_equal(center, expected_center)
        np.testing.assert_array_equal(scale, fix_aspect_ratio(padded, aspect=input_size[0] / input_size[1]))
        matrix = crop_affine(center, scale, input_size)
        warped = opencv4_warp_affine_bilinear(image, matrix, input_size)
        expected = ((warped - PIXEL_MEAN) / PIXEL_STD).transpose(2, 0, 1).astype(np.float32)
        assert np.array_equal(crop, expected), f"case {case}"
        assert (warped == 0).all(axis=-1).any(), f"case {case}: no border pixel in the crop"
