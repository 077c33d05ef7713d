"""Wan-Animate preprocessing pieces against hand-computed values (wan-animate-reference §2-§3)."""

import numpy as np
import pytest

from core.backends.wan_animate.aapose import AAPose, to_aapose, to_aapose_sequence
from core.backends.wan_animate.draw import COLORS, draw_aapose, stick_width
from core.backends.wan_animate.face import face_box
from core.backends.wan_animate.pipeline import needs_group_offload, num_segments
from core.backends.wan_animate.sizes import area_size, padding_resize
from core.pose.records import Pose


@pytest.mark.parametrize(
    ("hw", "area", "expected"),
    [((1080, 1920), 1280 * 720, (720, 1280)), ((1920, 1080), 1280 * 720, (1280, 720)),
     ((480, 640), 1280 * 720, (816, 1104)),
     ((1080, 1920), 832 * 480, (464, 832))],  # sqrt(399360 * 9 / 16) = 473.96 -> 464; 399360 / 473.96 = 842.6 -> 832
)  # fmt: skip
def test_area_size_is_the_reference_fallback_formula(hw: tuple[int, int], area: int, expected: tuple[int, int]) -> None:
    assert area_size(*hw, area) == expected


def test_padding_resize_centres_the_fitting_side_with_int_half_padding() -> None:
    image = np.full((10, 10, 3), 200, dtype=np.uint8)
    out = padding_resize(image, 10, 15)  # fits the height: 10 wide, padded int(5 / 2) = 2 on the left
    assert out[:, 2:12].min() == 200 and out[:, :2].max() == 0 and out[:, 12:].max() == 0


@pytest.mark.parametrize(("hw", "expected"), [((720, 1280), 2), ((512, 512), 1), ((1080, 1920), 4), ((100, 100), 1)])
def test_stick_width(hw: tuple[int, int], expected: int) -> None:
    assert stick_width(*hw) == expected


def _pose(num_persons: int = 1) -> Pose:
    rng = np.random.default_rng(0)
    p = num_persons
    return Pose(
        body=rng.random((p, 18, 2)), body_scores=rng.random((p, 18)), face=rng.random((p, 68, 2)),
        face_scores=rng.random((p, 68)), hands=rng.random((2 * p, 21, 2)), hand_scores=rng.random((2 * p, 21)),
        feet=rng.random((p, 6, 2)), feet_scores=rng.random((p, 6)),
    )  # fmt: skip


def test_to_aapose_averages_shoulders_into_the_neck_and_toes_into_one_point() -> None:
    pose = _pose()
    aa = to_aapose(pose, (100, 200))
    np.testing.assert_array_equal(aa.body[1], (pose.body[0, 2] + pose.body[0, 5]) / 2)
    assert aa.body_scores[1] == (pose.body_scores[0, 2] + pose.body_scores[0, 5]) / 2
    np.testing.assert_array_equal(aa.body[18], (pose.feet[0, 0] + pose.feet[0, 1]) / 2)  # type: ignore[index]
    np.testing.assert_array_equal(aa.body[19], (pose.feet[0, 3] + pose.feet[0, 4]) / 2)  # type: ignore[index]
    np.testing.assert_array_equal(aa.body[[0, 2, 17]], pose.body[0, [0, 2, 17]])
    np.testing.assert_array_equal(aa.right_hand, pose.hands[1])


def test_a_frame_with_every_body_point_off_the_top_left_reuses_the_previous_body() -> None:
    first, second = _pose(), _pose()
    second.body[:] = -0.5
    second.feet[:] = -0.5  # type: ignore[index]
    sequence = to_aapose_sequence([first, second], (10, 10))
    np.testing.assert_array_equal(sequence[1].body, sequence[0].body)
    np.testing.assert_array_equal(sequence[1].face, second.face[0])  # the face is its own


def _one_limb_pose(score: float) -> AAPose:
    body = np.full((20, 2), 0.5)
    body[1], body[2] = (0.25, 0.5), (0.75, 0.5)  # neck -> right shoulder: limb 2-3, colour (255, 0, 0)
    scores = np.zeros(20)
    scores[[1, 2]] = score
    hand, hand_scores = np.zeros((21, 2)), np.zeros(21)
    return AAPose(body, scores, hand, hand_scores, hand, hand_scores, np.zeros((68, 2)), np.zeros(68), 100, 200)


def test_draw_fills_a_limb_with_0_6_of_its_rgb_colour_and_its_joints_with_the_full_colour() -> None:
    canvas = draw_aapose(_one_limb_pose(0.5))
    assert canvas.shape == (100, 200, 3)
    assert tuple(canvas[50, 100]) == (153, 0, 0)  # the limb's middle: int(0.6 * 255) in R
    assert tuple(canvas[50, 50]) == tuple(COLORS[1])  # the neck joint (point 2)
    assert tuple(canvas[50, 150]) == tuple(COLORS[2])  # the right shoulder (point 3)
    assert canvas[40].max() == 0  # sw = 1 at a 100 short side: nothing 10 px off the limb


def test_draw_skips_points_scoring_below_0_5() -> None:
    assert draw_aapose(_one_limb_pose(0.49)).max() == 0


def test_face_box_grows_the_landmarks_box_by_sqrt_1_3_mostly_upwards() -> None:
    face = np.array([[0.1, 0.1], [0.2, 0.2]] * 34)  # a 100 x 100 px box in a 1000 x 1000 frame
    pose = AAPose(np.zeros((20, 2)), np.zeros(20), np.zeros((21, 2)), np.zeros(21), np.zeros((21, 2)),
                  np.zeros(21), face, np.zeros(68), 1000, 1000)  # fmt: skip
    # sqrt(1.3) * 100 = 114.02: 7.01 on each side, 3 * 3.50 above and 3.50 below, truncated
    assert face_box(pose, (1000, 1000)) == (92, 207, 89, 203)


@pytest.mark.parametrize(
    ("num_frames", "length", "prev", "expected"), [(77, 77, 1, 1), (78, 77, 1, 2), (300, 77, 1, 4), (2, 77, 1, 1),
                                                   (81, 77, 5, 2), (77, 77, 5, 1)]
)  # fmt: skip
def test_num_segments_follows_the_pipeline_padding(num_frames: int, length: int, prev: int, expected: int) -> None:
    assert num_segments(num_frames, length, prev) == expected


def test_group_offload_only_when_weights_and_working_set_do_not_fit() -> None:
    gib = 2**30
    assert needs_group_offload(free_bytes=40 * gib, weight_bytes=48 * gib, working_bytes=10 * gib)
    assert not needs_group_offload(free_bytes=140 * gib, weight_bytes=48 * gib, working_bytes=24 * gib)
    assert needs_group_offload(free_bytes=70 * gib, weight_bytes=48 * gib, working_bytes=24 * gib)
