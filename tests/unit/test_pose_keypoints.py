"""DWPose crop, SimCC decoding and the COCO-WholeBody -> OpenPose conversion, pinned to reference §6."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.pose.keypoints import (
    PIXEL_MEAN,
    PIXEL_STD,
    bbox_center_scale,
    crop_affine,
    crop_person,
    crop_to_image,
    decode_simcc,
    fix_aspect_ratio,
)
from core.pose.wholebody import to_pose

INPUT_SIZE = (288, 384)  # (w, h) of dw-ll_ucoco_384


def test_bbox_center_scale_pads_by_1_25() -> None:
    center, scale = bbox_center_scale(np.array([10.0, 20.0, 110.0, 220.0]))
    np.testing.assert_array_equal(center, [60.0, 120.0])
    np.testing.assert_array_equal(scale, [125.0, 250.0])


def test_fix_aspect_ratio_grows_the_short_side_to_3_by_4() -> None:
    np.testing.assert_array_equal(fix_aspect_ratio(np.array([125.0, 250.0])), [187.5, 250.0])  # too tall
    np.testing.assert_array_equal(fix_aspect_ratio(np.array([300.0, 100.0])), [300.0, 400.0])  # too wide
    np.testing.assert_array_equal(fix_aspect_ratio(np.array([75.0, 100.0])), [75.0, 100.0])  # exact: the h branch


def _apply(matrix: np.ndarray, point: np.ndarray) -> np.ndarray:
    return matrix[:, :2] @ point + matrix[:, 2]


def test_crop_affine_maps_box_center_to_crop_center_and_box_corners_to_crop_corners() -> None:
    center, scale = np.array([500.0, 300.0]), np.array([150.0, 200.0])
    matrix = crop_affine(center, scale, INPUT_SIZE)
    assert matrix.shape == (2, 3)
    np.testing.assert_allclose(_apply(matrix, center), [144.0, 192.0], atol=1e-4)
    np.testing.assert_allclose(_apply(matrix, center - scale / 2), [0.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(_apply(matrix, center + scale / 2), [288.0, 384.0], atol=1e-4)


@given(
    x1=st.floats(0, 1000),
    y1=st.floats(0, 1000),
    width=st.floats(4, 800),
    height=st.floats(4, 800),
    u=st.floats(0, 1),
    v=st.floats(0, 1),
)
def test_crop_to_image_inverts_the_crop_affine(
    x1: float, y1: float, width: float, height: float, u: float, v: float
) -> None:
    center, scale = bbox_center_scale(np.array([x1, y1, x1 + width, y1 + height]))
    scale = fix_aspect_ratio(scale)
    matrix = crop_affine(center, scale, INPUT_SIZE)
    point = center - scale / 2 + np.array([u, v]) * scale  # anywhere in the padded box
    in_crop = _apply(matrix, point).astype(np.float32)
    back = crop_to_image(in_crop[None], center, scale, INPUT_SIZE)[0]
    # float32 points in the matrix: a relative error near 1e-7 of the coordinates involved.
    np.testing.assert_allclose(back, point, atol=2e-3 * max(1.0, *scale) / 100)


def test_crop_person_with_an_identity_box_returns_the_normalised_image() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(384, 288, 3), dtype=np.uint8)
    # A box that, padded by 1.25, is exactly the 288 x 384 frame: the affine is the identity.
    middle, half = np.array([144.0, 192.0]), np.array([288.0, 384.0]) / 1.25 / 2
    box = np.concatenate([middle - half, middle + half])
    crop, center, scale = crop_person(image, box, INPUT_SIZE)
    assert crop.shape == (3, 384, 288) and crop.dtype == np.float32
    np.testing.assert_allclose(center, [144.0, 192.0])
    np.testing.assert_allclose(scale, [288.0, 384.0])
    expected = ((image - PIXEL_MEAN) / PIXEL_STD).astype(np.float32).transpose(2, 0, 1)
    np.testing.assert_array_equal(crop, expected)


def test_crop_person_fills_outside_the_image_with_black_before_normalising() -> None:
    image = np.full((50, 50, 3), 200, dtype=np.uint8)
    crop, _, _ = crop_person(image, np.array([0.0, 0.0, 50.0, 50.0]), INPUT_SIZE)
    # The padded, aspect-fixed box is taller than the image: top and bottom rows come from the border.
    black = ((0 - PIXEL_MEAN) / PIXEL_STD).astype(np.float32)
    np.testing.assert_array_equal(crop[:, 0, 0], black)
    np.testing.assert_array_equal(crop[:, -1, -1], black)
    inside = ((200 - PIXEL_MEAN) / PIXEL_STD).astype(np.float32)
    np.testing.assert_array_equal(crop[:, 192, 144], inside)


def test_decode_simcc_takes_argmax_over_split_ratio_and_min_of_maxima() -> None:
    simcc_x = np.zeros((4, 10), dtype=np.float32)
    simcc_y = np.zeros((4, 12), dtype=np.float32)
    simcc_x[0, 7], simcc_y[0, 3] = 0.9, 0.5  # score min(0.9, 0.5)
    simcc_x[1, 2], simcc_y[1, 11] = 0.2, 0.8  # score min(0.2, 0.8)
    simcc_x[2] -= 1.0
    simcc_x[2, 5], simcc_y[2, 4] = -0.5, 0.7  # max_x negative: location -1 before the split ratio
    simcc_x[3, 1], simcc_y[3, 2] = 0.0, 0.6  # score exactly 0 counts as missing too
    locations, scores = decode_simcc(simcc_x, simcc_y)
    np.testing.assert_array_equal(locations, [[3.5, 1.5], [1.0, 5.5], [-0.5, -0.5], [-0.5, -0.5]])
    np.testing.assert_array_equal(scores, np.array([0.5, 0.2, -0.5, 0.0], dtype=np.float32))
    assert locations.dtype == np.float32 and scores.dtype == np.float32


def test_decode_simcc_accepts_a_batch_dimension() -> None:
    rng = np.random.default_rng(1)
    simcc_x, simcc_y = rng.normal(size=(3, 5, 20)), rng.normal(size=(3, 5, 24))
    locations, scores = decode_simcc(simcc_x, simcc_y)
    assert locations.shape == (3, 5, 2) and scores.shape == (3, 5)
    for n in range(3):
        single = decode_simcc(simcc_x[n], simcc_y[n])
        np.testing.assert_array_equal(locations[n], single[0])
        np.testing.assert_array_equal(scores[n], single[1])


def test_crop_to_image_maps_crop_center_to_box_center() -> None:
    center, scale = np.array([500.0, 300.0]), np.array([150.0, 200.0])
    points = np.array([[144.0, 192.0], [0.0, 0.0], [-0.5, -0.5]], dtype=np.float32)
    mapped = crop_to_image(points, center, scale, INPUT_SIZE)
    assert mapped.dtype == np.float64
    np.testing.assert_allclose(mapped[0], center)
    np.testing.assert_allclose(mapped[1], center - scale / 2)
    np.testing.assert_allclose(mapped[2], center - scale / 2 - 0.5 / np.array([288.0, 384.0]) * scale)


# COCO-WholeBody body indices: 0 nose, 1 L-eye, 2 R-eye, 3 L-ear, 4 R-ear, 5 L-shoulder, 6 R-shoulder,
# 7 L-elbow, 8 R-elbow, 9 L-wrist, 10 R-wrist, 11 L-hip, 12 R-hip, 13 L-knee, 14 R-knee, 15 L-ankle,
# 16 R-ankle. "neck" is the mean of 5 and 6.
OPENPOSE_FROM_COCO = [0, "neck", 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]


def _distinct_wholebody(num_persons: int) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints whose x is the COCO index (+1000 per person) and y is 10x that, scores 0.5 + index/1000."""
    index = np.arange(133, dtype=np.float64)
    keypoints = np.stack([np.stack([index + 1000 * p, 10 * (index + 1000 * p)], axis=-1) for p in range(num_persons)])
    scores = np.tile((0.5 + index / 1000).astype(np.float32), (num_persons, 1))
    return keypoints, scores


def test_to_pose_permutes_coco_body_to_openpose_18() -> None:
    keypoints, scores = _distinct_wholebody(2)
    pose = to_pose(keypoints, scores, (1, 1))  # no normalisation: read indices back directly
    assert pose.body.shape == (2, 18, 2) and pose.body_scores.shape == (2, 18)
    for person in range(2):
        for slot, source in enumerate(OPENPOSE_FROM_COCO):
            expected = (5.5 if source == "neck" else source) + 1000 * person
            assert pose.body[person, slot, 0] == expected, (person, slot)
            assert pose.body[person, slot, 1] == 10 * expected, (person, slot)
            if source != "neck":
                assert pose.body_scores[person, slot] == np.float32(0.5 + source / 1000), slot


def test_to_pose_splits_face_and_hands_left_hands_first() -> None:
    keypoints, scores = _distinct_wholebody(2)
    pose = to_pose(keypoints, scores, (1, 1))
    # Post-insert ranges 24..91, 92..112, 113..133 are COCO 23..90, 91..111, 112..132.
    np.testing.assert_array_equal(pose.face[0, :, 0], np.arange(23, 91))
    np.testing.assert_array_equal(pose.face[1, :, 0], np.arange(23, 91) + 1000)
    np.testing.assert_array_equal(pose.face_scores[0], scores[0, 23:91])
    assert pose.hands.shape == (4, 21, 2) and pose.hand_scores.shape == (4, 21)
    np.testing.assert_array_equal(pose.hands[0, :, 0], np.arange(91, 112))  # person 0 left
    np.testing.assert_array_equal(pose.hands[1, :, 0], np.arange(91, 112) + 1000)  # person 1 left
    np.testing.assert_array_equal(pose.hands[2, :, 0], np.arange(112, 133))  # person 0 right
    np.testing.assert_array_equal(pose.hands[3, :, 0], np.arange(112, 133) + 1000)  # person 1 right
    np.testing.assert_array_equal(pose.hand_scores[3], scores[1, 112:133])


@pytest.mark.parametrize(
    ("left", "right", "neck_score"),
    [
        (0.9, 0.9, 1.0),
        (0.31, 0.9, 1.0),
        (0.3, 0.9, 0.0),  # strictly above 0.3
        (np.float32(0.3), 0.9, 1.0),  # float32(0.3) is just above 0.3, compared in float64 as the original
        (0.9, 0.1, 0.0),
        (-1.0, -1.0, 0.0),
    ],
)
def test_to_pose_neck_score_is_binary_on_both_shoulders(left: float, right: float, neck_score: float) -> None:
    keypoints, scores = _distinct_wholebody(1)
    scores = scores.astype(np.float64) if not isinstance(left, np.float32) else scores
    scores[0, 5], scores[0, 6] = left, right
    pose = to_pose(keypoints, scores, (1, 1))
    assert pose.body_scores[0, 1] == neck_score
    np.testing.assert_array_equal(pose.body[0, 1], [5.5, 55.0])  # position: shoulder mean regardless


def test_to_pose_normalises_x_by_width_and_y_by_height() -> None:
    keypoints = np.zeros((1, 133, 2))
    keypoints[0, 0] = [320.0, 120.0]  # nose
    keypoints[0, 100] = [64.0, 480.0]  # a left-hand point (post-insert 101)
    pose = to_pose(keypoints, np.ones((1, 133), dtype=np.float32), (480, 640))
    np.testing.assert_array_equal(pose.body[0, 0], [0.5, 0.25])
    np.testing.assert_array_equal(pose.hands[0, 100 - 91], [0.1, 1.0])
    assert pose.body.dtype == np.float64


def test_to_pose_keeps_the_feet_coco_17_to_22() -> None:
    keypoints, scores = _distinct_wholebody(2)
    pose = to_pose(keypoints, scores, (1, 1))
    assert pose.feet is not None and pose.feet_scores is not None
    assert pose.feet.shape == (2, 6, 2) and pose.feet_scores.shape == (2, 6)
    np.testing.assert_array_equal(pose.feet[0, :, 0], np.arange(17, 23))  # L big toe, ..., R heel
    np.testing.assert_array_equal(pose.feet[1, :, 1], 10 * (np.arange(17, 23) + 1000))
    np.testing.assert_array_equal(pose.feet_scores[1], scores[1, 17:23])
