"""Rescale driving poses onto the reference person's body (reference §7, the original's get_video_pose).

One linear map is fitted per video from the vertical positions of stable body keypoints, and applied to
every point of every frame; x gets the same pixel scale as y so that body proportions are kept.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import MediaError, NoPersonError
from core.pose.records import BODY_SCORE_THRESHOLD, Pose

logger = logging.getLogger(__name__)

# OpenPose ids used for the fit: nose, neck, shoulders, hips, knees, ankles, eyes, ears (1.1's set;
# elbows and wrists move too much to say anything about body size).
REFERENCE_KEYPOINTS = (0, 1, 2, 5, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17)


@dataclass(frozen=True)
class PoseAlignment:
    """x' = ax * x + bx and y' = ay * y + by, in normalised coordinates."""

    ax: float
    ay: float
    bx: float
    by: float


def fit_alignment(
    reference: Pose,
    driving: Sequence[Pose],
    reference_size: tuple[int, int],
    video_size: tuple[int, int],
) -> PoseAlignment:
    """Fit the map from driving-video poses to the reference body, exactly as the original does.

    Args:
        reference: the pose of the reference image (person 0 is the one animated).
        driving: the poses of the sampled driving frames.
        reference_size: (height, width) of the reference image.
        video_size: (height, width) of the driving frames.

    Where the original crashes we do this instead:
    - no reference keypoint scores above 0.3 (or no person at all): `NoPersonError`;
    - no driving frame holds exactly one person (the original fails in ``np.stack``, issue #41): the fit
      uses person 0, the highest-scoring one, of every frame that has a person, and logs a warning;
    - no driving frames: `MediaError`; no person in any driving frame: `NoPersonError`.
    """
    # 1. Reference keypoints of person 0 that are visible (the original's subset >= 0, score > 0.3).
    keypoint_ids = _visible_reference_keypoints(reference)
    ref_body = np.asarray(reference.body[0], dtype=np.float64)[keypoint_ids]  # (K, 2)

    # 2. Driving bodies used for the fit, with no confidence filtering (as the original).
    det_body = _fit_bodies(driving)[:, keypoint_ids]  # (F, K, 2)
    num_frames = det_body.shape[0]

    # 3. y: least squares of reference y on detected y (polyfit(x=detected, y=reference), frame-major).
    ay, by = np.polyfit(det_body[:, :, 1].flatten(), np.tile(ref_body[:, 1], num_frames), 1)

    # 4. x: the same pixel scale as y, i.e. ay * (fw * H_ref) / (fh * W_ref), in the original's op order.
    height, width = reference_size
    fh, fw = video_size
    ax = ay / (fh / fw / height * width)

    # 5. x offset: the mean residual over every (frame, keypoint) pair.
    bx = np.mean(np.tile(ref_body[:, 0], num_frames) - det_body[:, :, 0].flatten() * ax)
    return PoseAlignment(ax=float(ax), ay=float(ay), bx=float(bx), by=float(by))


def align_pose(pose: Pose, alignment: PoseAlignment) -> Pose:
    """Apply the map to the body, face and hand points of every person; scores are unchanged."""
    scale = np.array([alignment.ax, alignment.ay])  # (2,): x and y
    offset = np.array([alignment.bx, alignment.by])
    return Pose(
        body=pose.body * scale + offset,
        body_scores=pose.body_scores,
        face=pose.face * scale + offset,
        face_scores=pose.face_scores,
        hands=pose.hands * scale + offset,
        hand_scores=pose.hand_scores,
        feet=None if pose.feet is None else pose.feet * scale + offset,
        feet_scores=pose.feet_scores,
    )


def _visible_reference_keypoints(reference: Pose) -> list[int]:
    if reference.num_persons == 0:
        raise NoPersonError(
            "no person found in the reference image: use a photo that shows one person, whole body if possible"
        )
    # Compared in float64, as the original's scores were: float32 scores would be compared with
    # float32(0.3) and drop a score of exactly float32(0.3), which the original keeps.
    visible = np.asarray(reference.body_scores[0], dtype=np.float64) > BODY_SCORE_THRESHOLD
    keypoint_ids = [i for i in REFERENCE_KEYPOINTS if visible[i]]
    if not keypoint_ids:
        raise NoPersonError(
            "no person found in the reference image (no head, shoulder, hip or leg keypoint was detected "
            "with confidence above 0.3): use a clearer photo that shows the person's body"
        )
    return keypoint_ids


def _fit_bodies(driving: Sequence[Pose]) -> np.ndarray:
    """(F, 18, 2) float64 bodies of the frames with exactly one person, or the fallback described above."""
    if not driving:
        raise MediaError("the driving video has no frames to take the motion from")
    single = [pose.body[0] for pose in driving if pose.num_persons == 1]
    if not single:
        single = [pose.body[0] for pose in driving if pose.num_persons > 0]
        if not single:
            raise NoPersonError("no person found in any frame of the driving video")
        logger.warning(
            "no driving frame shows exactly one person; fitting the pose rescale on the highest-scoring "
            "person of each of %d frames instead",
            len(single),
        )
    return np.stack(single).astype(np.float64)
