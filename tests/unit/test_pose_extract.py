"""From images to pose frames (reference §7 steps 1-9), with a fixed-answer stand-in for DWPose."""

from collections.abc import Sequence

import numpy as np
import pytest

from core.errors import MediaError, NoPersonError
from core.pose.align import align_pose, fit_alignment
from core.pose.draw import draw_pose
from core.pose.extract import detect_driving_poses, estimate_poses, extract_pose_frames, render_pose_frames
from core.pose.records import Pose

REFERENCE_HW = (48, 40)  # near square: the smallest 2160-short-side canvas, fast to draw
VIDEO_HW = (24, 40)


def make_pose(num_persons: int, seed: int) -> Pose:
    rng = np.random.default_rng(seed)
    return Pose(
        body=rng.uniform(0.1, 0.9, (num_persons, 18, 2)),
        body_scores=rng.uniform(0.2, 1.0, (num_persons, 18)),
        face=rng.uniform(0.1, 0.9, (num_persons, 68, 2)),
        face_scores=rng.uniform(0.0, 1.0, (num_persons, 68)),
        hands=rng.uniform(0.1, 0.9, (2 * num_persons, 21, 2)),
        hand_scores=rng.uniform(0.0, 1.0, (2 * num_persons, 21)),
    )


class FixedEstimator:
    """Answers with a fixed Pose per image, picked by the image's first pixel value (its id)."""

    def __init__(self, poses: dict[int, Pose]) -> None:
        self.poses = poses
        self.batch_sizes: list[int] = []

    def estimate(self, image: np.ndarray) -> Pose:
        return self.poses[int(image[0, 0, 0])]

    def estimate_batch(self, images: Sequence[np.ndarray]) -> list[Pose]:
        self.batch_sizes.append(len(images))
        return [self.estimate(image) for image in images]


def tagged_images(num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """A reference image tagged 0 and driving frames tagged 1..N."""
    reference = np.zeros((*REFERENCE_HW, 3), dtype=np.uint8)
    driving = np.zeros((num_frames, *VIDEO_HW, 3), dtype=np.uint8)
    driving[:, 0, 0, 0] = np.arange(1, num_frames + 1)
    return reference, driving


def test_extract_pose_frames_draws_reference_then_aligned_driving_poses() -> None:
    poses = {0: make_pose(1, 0), 1: make_pose(2, 1), 2: make_pose(1, 2)}
    reference, driving = tagged_images(2)

    frames = extract_pose_frames(reference, driving, FixedEstimator(poses))

    alignment = fit_alignment(poses[0], [poses[1], poses[2]], REFERENCE_HW, VIDEO_HW)
    assert frames.shape == (3, *REFERENCE_HW, 3)
    assert frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0], draw_pose(poses[0], *REFERENCE_HW))  # not rescaled
    for index in (1, 2):
        np.testing.assert_array_equal(frames[index], draw_pose(align_pose(poses[index], alignment), *REFERENCE_HW))
    assert frames[1:].any()


def test_estimate_poses_batches_driving_frames_and_keeps_order() -> None:
    poses = {i: make_pose(1, i) for i in range(8)}
    reference, driving = tagged_images(7)
    estimator = FixedEstimator(poses)

    sequence = estimate_poses(reference, driving, estimator, batch_size=3)

    assert estimator.batch_sizes == [3, 3, 1]
    assert sequence.driving == [poses[i] for i in range(1, 8)]
    assert sequence.reference is poses[0]
    assert sequence.reference_size == REFERENCE_HW
    assert sequence.alignment == fit_alignment(poses[0], sequence.driving, REFERENCE_HW, VIDEO_HW)


def test_render_pose_frames_matches_aligned_driving() -> None:
    poses = {i: make_pose(1, i) for i in range(3)}
    reference, driving = tagged_images(2)
    sequence = estimate_poses(reference, driving, FixedEstimator(poses))

    frames = render_pose_frames(sequence)

    aligned = sequence.aligned_driving()
    np.testing.assert_array_equal(frames[2], draw_pose(aligned[1], *REFERENCE_HW))
    np.testing.assert_array_equal(aligned[0].body, align_pose(poses[1], sequence.alignment).body)


def test_extract_pose_frames_without_driving_frames_raises_media_error() -> None:
    reference, driving = tagged_images(0)

    with pytest.raises(MediaError, match="no frames"):
        extract_pose_frames(reference, driving, FixedEstimator({0: make_pose(1, 0)}))


def test_extract_pose_frames_without_reference_person_raises_no_person() -> None:
    reference, driving = tagged_images(1)
    estimator = FixedEstimator({0: make_pose(0, 0), 1: make_pose(1, 1)})

    with pytest.raises(NoPersonError, match="reference image"):
        extract_pose_frames(reference, driving, estimator)


@pytest.mark.parametrize(
    ("reference_shape", "driving_shape", "dtype"),
    [((64, 36), (1, 24, 40, 3), np.uint8), ((64, 36, 3), (24, 40, 3), np.uint8), ((64, 36, 3), (1, 24, 40, 3), float)],
)
def test_extract_pose_frames_rejects_wrong_array_layout(
    reference_shape: tuple[int, ...], driving_shape: tuple[int, ...], dtype: type
) -> None:
    reference = np.zeros(reference_shape, dtype=np.uint8)
    driving = np.zeros(driving_shape, dtype=dtype)

    with pytest.raises(ValueError, match="must be"):
        extract_pose_frames(reference, driving, FixedEstimator({0: make_pose(1, 0)}))


def test_estimate_poses_with_given_driving_poses_detects_only_the_reference_and_draws_the_same_frames() -> None:
    poses = {0: make_pose(1, 0), 1: make_pose(1, 1), 2: make_pose(2, 2), 3: make_pose(1, 3)}
    reference, driving = tagged_images(3)
    cold = estimate_poses(reference, driving, FixedEstimator(poses))

    # The driving poses come from the earlier run; the frames are tagged 9, which this estimator cannot answer.
    estimator = FixedEstimator({0: poses[0]})
    reused = estimate_poses(reference, np.full_like(driving, 9), estimator, driving_poses=cold.driving)

    assert estimator.batch_sizes == []  # no driving frame detected (the reference goes through estimate)
    assert np.array_equal(render_pose_frames(reused), render_pose_frames(cold))
    detected = detect_driving_poses(driving, FixedEstimator(poses))
    assert [id(pose) for pose in detected] == [id(poses[1]), id(poses[2]), id(poses[3])]


def test_estimate_poses_refuses_driving_poses_of_another_frame_count() -> None:
    reference, driving = tagged_images(3)
    with pytest.raises(ValueError, match="2 driving poses for 3 driving frames"):
        estimate_poses(reference, driving, FixedEstimator({0: make_pose(1, 0)}), driving_poses=[make_pose(1, 1)] * 2)
