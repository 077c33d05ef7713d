"""Confidence-aware drawing (reference §8): canvas rule, palette reversal, brightness, thresholds.

Exact-pixel tests draw at 2160x2160, where the canvas is the output (no downscale), so a pixel holds
exactly the colour the original would have drawn there.
"""

import cv2
import numpy as np
import pytest

from core.pose.draw import canvas_size, draw_pose
from core.pose.records import Pose

SIDE = 2160  # canvas == output: no resize blur


def blank_arrays(num_persons: int = 1) -> dict[str, np.ndarray]:
    """Pose arrays where nothing gets drawn: zero scores, and every point at pixel 0 (needs >= 1)."""
    return {
        "body": np.zeros((num_persons, 18, 2)),
        "body_scores": np.zeros((num_persons, 18)),
        "face": np.zeros((num_persons, 68, 2)),
        "face_scores": np.zeros((num_persons, 68)),
        "hands": np.zeros((2 * num_persons, 21, 2)),
        "hand_scores": np.zeros((2 * num_persons, 21)),
    }


def limb_zero(
    arrays: dict[str, np.ndarray],
    person: int,
    y: float,
    scores: tuple[float, float],
    xs: tuple[float, float] = (0.25, 0.75),
) -> None:
    """Limb 0 (neck -> right shoulder, palette (255, 0, 0)), horizontal from xs[0] to xs[1] at height y."""
    arrays["body"][person, 1] = (xs[0], y)
    arrays["body"][person, 2] = (xs[1], y)
    arrays["body_scores"][person, [1, 2]] = scores


def sampled_limb_zero(arrays: dict[str, np.ndarray]) -> None:
    """Limb 0 on the 2160x3840 canvas of a 72x128 output, placed on the rows and columns that the
    bilinear 30x downscale reads (30 i + 14 and 30 i + 15): elsewhere it would vanish."""
    limb_zero(arrays, 0, 1065.5 / 2160, (0.9, 0.8), xs=(974.5 / 3840, 2894.5 / 3840))


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [
        ((576, 1024, (2160, 3840))),
        ((1024, 576, (3840, 2160))),
        ((100, 150, (2160, 3240))),
        ((2160, 4000, (2160, 4000))),
    ],
)
def test_canvas_size_short_side_is_2160(height: int, width: int, expected: tuple[int, int]) -> None:
    assert canvas_size(height, width) == expected


def test_draw_pose_returns_rgb_uint8_at_requested_size() -> None:
    image = draw_pose(Pose(**blank_arrays(2)), 72, 128)

    assert image.shape == (72, 128, 3)
    assert image.dtype == np.uint8
    assert not image.any()


def test_draw_pose_palette_comes_out_channel_reversed() -> None:
    arrays = blank_arrays()
    sampled_limb_zero(arrays)  # palette (255, 0, 0), (255, 85, 0), (255, 170, 0): red-ish

    image = draw_pose(Pose(**arrays), 72, 128).astype(np.int64)

    red, green, blue = (image[..., c].sum() for c in range(3))
    assert red == 0
    assert blue > green > 0


def test_draw_pose_matches_straightforward_rendering_of_one_limb() -> None:
    arrays = blank_arrays()
    sampled_limb_zero(arrays)
    # Independent rendering on the 2160x3840 canvas of a 72x128 output, with the §8 numbers written out.
    canvas = np.zeros((2160, 3840, 3), dtype=np.uint8)
    # From (974.5, 1065.5) to (2894.5, 1065.5): centre truncated, half length 960, angle 180.
    outline = cv2.ellipse2Poly((1934, 1065), (960, 4), 180, 0, 360, 1)
    cv2.fillConvexPoly(canvas, outline, (183, 0, 0))  # int(255 * 0.9 * 0.8)
    canvas = (canvas * 0.6).astype(np.uint8)  # 183 -> 109
    cv2.circle(canvas, (974, 1065), 4, (229, 76, 0), thickness=-1)  # int((255, 85, 0) * 0.9)
    cv2.circle(canvas, (2894, 1065), 4, (204, 136, 0), thickness=-1)  # int((255, 170, 0) * 0.8)
    expected = cv2.resize(canvas, (128, 72), interpolation=cv2.INTER_LINEAR)[..., ::-1]

    image = draw_pose(Pose(**arrays), 72, 128)

    assert expected.any()
    assert image.tobytes() == np.ascontiguousarray(expected).tobytes()


def test_limb_brightness_is_product_of_scores_then_dimmed() -> None:
    arrays = blank_arrays(3)
    limb_zero(arrays, 0, 0.25, (1.0, 1.0))
    limb_zero(arrays, 1, 0.5, (0.6, 0.6))
    limb_zero(arrays, 2, 0.75, (1.2, 1.2))  # raw scores can exceed 1: the colour saturates

    image = draw_pose(Pose(**arrays), SIDE, SIDE)

    assert tuple(image[540, 1080]) == (0, 0, 153)  # int(255 * 1.0) * 0.6
    assert tuple(image[1080, 1080]) == (0, 0, 54)  # int(255 * 0.36) = 91, * 0.6
    assert tuple(image[1620, 1080]) == (0, 0, 153)  # int(255 * 1.44) saturates to 255, * 0.6


def test_limb_is_skipped_when_an_endpoint_score_is_below_threshold() -> None:
    arrays = blank_arrays()
    limb_zero(arrays, 0, 0.5, (1.0, 0.29))

    image = draw_pose(Pose(**arrays), SIDE, SIDE)

    assert not image[1080, 1080].any()
    assert tuple(image[1080, 540]) == (0, 85, 255)  # the neck point itself is still drawn


def test_limb_endpoint_at_exactly_threshold_takes_last_keypoint_like_original() -> None:
    # Score 0.3 passes the limb test (>= 0.3) but not visibility (> 0.3): the original then reads its
    # flat keypoint list at index -1, the last person's left ear.
    arrays = blank_arrays()
    limb_zero(arrays, 0, 0.25, (1.0, 0.3))
    arrays["body"][0, 17] = (0.25, 0.75)

    image = draw_pose(Pose(**arrays), SIDE, SIDE)

    assert tuple(image[1080, 540]) == (0, 0, 45)  # neck -> left ear: int(255 * 0.3) = 76, * 0.6
    assert not image[540, 1080].any()  # neck -> right shoulder is not drawn
    assert not image[540, 1620].any()  # nor the 0.3 point


def test_body_point_needs_score_above_threshold_and_is_not_dimmed() -> None:
    arrays = blank_arrays(3)
    arrays["body"][:, 0] = [(0.25, 0.25), (0.5, 0.5), (0.75, 0.75)]  # noses
    arrays["body_scores"][:, 0] = [0.3, 0.31, 1.0]

    image = draw_pose(Pose(**arrays), SIDE, SIDE)

    assert not image[540, 540].any()
    assert tuple(image[1080, 1080]) == (0, 0, 79)  # int(255 * 0.31), palette (255, 0, 0) reversed
    assert tuple(image[1620, 1620]) == (0, 0, 255)  # drawn after the 0.6 dimming


def test_hands_are_drawn_at_any_score_with_red_points() -> None:
    arrays = blank_arrays()
    arrays["hands"][0, [0, 1]] = [(0.25, 0.5), (0.75, 0.5)]
    arrays["hand_scores"][0, [0, 1]] = 0.2  # no threshold: far below the body's 0.3

    image = draw_pose(Pose(**arrays), SIDE, SIDE)

    assert tuple(image[1080, 1080]) == (0, 0, 10)  # edge 0, HSV red, times int(0.2 * 0.2 * 255)
    assert tuple(image[1080, 540]) == (51, 0, 0)  # point (0, 0, int(0.2 * 255)) comes out red


def test_hand_edge_colour_follows_hsv_wheel() -> None:
    arrays = blank_arrays()
    arrays["hands"][1, [0, 5]] = [(0.25, 0.5), (0.75, 0.5)]  # edge 4 of the first right hand
    arrays["hand_scores"][1, [0, 5]] = 1.0

    image = draw_pose(Pose(**arrays), SIDE, SIDE)

    assert tuple(image[1080, 1080]) == (0, 255, 204)  # HSV(4/20, 1, 1) = (0.8, 1, 0) * 255, reversed


def test_hand_and_face_points_below_one_pixel_are_skipped() -> None:
    arrays = blank_arrays()
    arrays["hands"][0, 0] = (0.4 / SIDE, 0.5)  # x truncates to pixel 0
    arrays["hand_scores"][0, 0] = 1.0
    arrays["face"][0, 0] = (0.5, 0.9 / SIDE)
    arrays["face_scores"][0, 0] = 1.0

    image = draw_pose(Pose(**arrays), SIDE, SIDE)

    assert not image.any()


def test_face_points_are_grey_at_any_score_and_drawn_last() -> None:
    arrays = blank_arrays()
    arrays["face"][0, 0] = (0.5, 0.25)
    arrays["face_scores"][0, 0] = 0.05
    arrays["hands"][0, 0] = (0.5, 0.25)  # the same spot: the face dot covers the hand dot
    arrays["hand_scores"][0, 0] = 1.0

    image = draw_pose(Pose(**arrays), SIDE, SIDE)

    assert tuple(image[540, 1080]) == (12, 12, 12)  # int(0.05 * 255)
    assert tuple(image[540, 1084]) == (255, 0, 0)  # the hand dot's rim, radius 4 > 3


def test_draw_pose_accepts_float32_keypoints_as_float64() -> None:
    rng = np.random.default_rng(0)
    arrays = {key: rng.uniform(0.0, 1.0, value.shape) for key, value in blank_arrays(2).items()}
    narrow = {key: value.astype(np.float32) for key, value in arrays.items()}
    widened = {key: value.astype(np.float64) for key, value in narrow.items()}

    assert np.array_equal(draw_pose(Pose(**narrow), 40, 40), draw_pose(Pose(**widened), 40, 40))
