"""From a reference image and driving frames to the drawn pose frames the pipeline consumes (reference §7).

The original's get_image_pose and get_video_pose: the reference pose drawn as it is, then every driving
pose rescaled to the reference body and drawn at the reference size.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from core.errors import MediaError
from core.pose.align import PoseAlignment, align_pose, fit_alignment
from core.pose.draw import draw_pose
from core.pose.records import Pose

DRIVING_BATCH_SIZE = 16  # frames per estimate_batch call: bounds the memory of the crops in flight


class PoseEstimator(Protocol):
    """Whole-body pose estimation on (H, W, 3) uint8 RGB images (DWPose: core/pose/wholebody.py)."""

    def estimate(self, image: np.ndarray) -> Pose: ...

    def estimate_batch(self, images: Sequence[np.ndarray]) -> list[Pose]: ...


@dataclass(frozen=True)
class PoseSequence:
    """The poses behind one pose video, before drawing.

    Attributes:
        reference: the reference image's pose, in its own normalised coordinates.
        driving: one pose per driving frame, as detected (not yet aligned).
        alignment: the map from driving poses to the reference body.
        reference_size: (H, W) of the reference image, the size every frame is drawn at.
    """

    reference: Pose
    driving: list[Pose]
    alignment: PoseAlignment
    reference_size: tuple[int, int]

    def aligned_driving(self) -> list[Pose]:
        """The driving poses mapped onto the reference body."""
        return [align_pose(pose, self.alignment) for pose in self.driving]


def detect_driving_poses(
    driving_frames: np.ndarray, estimator: PoseEstimator, batch_size: int = DRIVING_BATCH_SIZE
) -> list[Pose]:
    """One Pose per driving frame, as detected: the part of ``estimate_poses`` that does not depend on the
    reference image, so a job that reuses a driving video may reuse it (the worker's pose cache).

    Args:
        driving_frames: (N, h, w, 3) uint8 RGB, the sampled driving frames at their native size.
        estimator: the pose estimator; frames go through ``estimate_batch`` ``batch_size`` at a time.
    """
    driving: list[Pose] = []
    for start in range(0, driving_frames.shape[0], batch_size):
        driving.extend(estimator.estimate_batch(list(driving_frames[start : start + batch_size])))
    return driving


def estimate_poses(
    reference_image: np.ndarray,
    driving_frames: np.ndarray,
    estimator: PoseEstimator,
    batch_size: int = DRIVING_BATCH_SIZE,
    *,
    driving_poses: list[Pose] | None = None,
) -> PoseSequence:
    """Estimate the reference and driving poses and fit the alignment (reference §7 steps 1-7).

    Args:
        reference_image: (H, W, 3) uint8 RGB, already resized and cropped to the output size.
        driving_frames: (N, h, w, 3) uint8 RGB, the sampled driving frames at their native size.
        estimator: the pose estimator; driving frames go through ``estimate_batch`` ``batch_size`` at a time.
        driving_poses: ``detect_driving_poses(driving_frames, ...)`` from an earlier run; None detects them.
            The frames still give the video size the alignment needs.

    Raises:
        MediaError: no driving frames. NoPersonError: no usable person (see ``fit_alignment``).
        ValueError: ``driving_poses`` is not one Pose per frame.
    """
    _check_inputs(reference_image, driving_frames, batch_size)
    if driving_poses is not None and len(driving_poses) != driving_frames.shape[0]:
        raise ValueError(f"{len(driving_poses)} driving poses for {driving_frames.shape[0]} driving frames")
    reference = estimator.estimate(reference_image)
    driving = driving_poses
    if driving is None:
        driving = detect_driving_poses(driving_frames, estimator, batch_size)
    reference_size = (reference_image.shape[0], reference_image.shape[1])
    video_size = (driving_frames.shape[1], driving_frames.shape[2])
    alignment = fit_alignment(reference, driving, reference_size, video_size)
    return PoseSequence(reference=reference, driving=driving, alignment=alignment, reference_size=reference_size)


def render_pose_frames(poses: PoseSequence) -> np.ndarray:
    """(N + 1, H, W, 3) uint8 RGB: the reference pose un-rescaled, then each aligned driving pose (§7 step 9)."""
    height, width = poses.reference_size
    frames = np.empty((len(poses.driving) + 1, height, width, 3), dtype=np.uint8)
    frames[0] = draw_pose(poses.reference, height, width)
    # One at a time: each drawing goes through a 2160-short-side canvas.
    for index, pose in enumerate(poses.driving, start=1):
        frames[index] = draw_pose(align_pose(pose, poses.alignment), height, width)
    return frames


def extract_pose_frames(
    reference_image: np.ndarray,
    driving_frames: np.ndarray,
    estimator: PoseEstimator,
    batch_size: int = DRIVING_BATCH_SIZE,
) -> np.ndarray:
    """(N + 1, H, W, 3) uint8 RGB pose frames, exactly the original's [get_image_pose, *get_video_pose]."""
    return render_pose_frames(estimate_poses(reference_image, driving_frames, estimator, batch_size))


def _check_inputs(reference_image: np.ndarray, driving_frames: np.ndarray, batch_size: int) -> None:
    if reference_image.ndim != 3 or reference_image.shape[2] != 3 or reference_image.dtype != np.uint8:
        raise ValueError(
            f"reference_image must be (H, W, 3) uint8, got {reference_image.shape} {reference_image.dtype}"
        )
    if driving_frames.ndim != 4 or driving_frames.shape[3] != 3 or driving_frames.dtype != np.uint8:
        raise ValueError(
            f"driving_frames must be (N, h, w, 3) uint8, got {driving_frames.shape} {driving_frames.dtype}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if driving_frames.shape[0] == 0:
        raise MediaError("the driving video has no frames to take the motion from")
