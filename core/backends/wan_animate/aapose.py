"""Our DWPose ``Pose`` as the reference's "AAPose" keypoints (wan-animate-reference §3, "Keypoint format").

The reference builds them from raw COCO-WholeBody points normalised to the frame: 20 body points, each
the mean of two COCO points (x, y and score all averaged), both hands and the 68 face landmarks. Our
``Pose`` holds the same normalised points (OpenPose-18 order, plus the feet), so the means are taken in the
reference's order on the same numbers: the neck comes from the shoulders, not from our binary-score neck.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np

from core.errors import NoPersonError
from core.pose.records import Pose

# OpenPose-18 indices of our Pose.body: 0 nose, 2 R-shoulder, 5 L-shoulder, ...; feet: 0 L big toe,
# 1 L small toe, 2 L heel, 3 R big toe, 4 R small toe, 5 R heel.
_R_SHOULDER, _L_SHOULDER = 2, 5
_L_BIG_TOE, _L_SMALL_TOE, _R_BIG_TOE, _R_SMALL_TOE = 0, 1, 3, 4


@dataclass(frozen=True)
class AAPose:
    """One person's keypoints in the reference's layout, normalised to a ``width`` x ``height`` frame.

    Attributes:
        body: (20, 2) float64: nose, neck, R shoulder/elbow/wrist, L shoulder/elbow/wrist, R hip/knee/ankle,
            L hip/knee/ankle, R eye, L eye, R ear, L ear, L toe, R toe.
        body_scores: (20,) float64.
        left_hand, right_hand: (21, 2) float64; left_hand_scores, right_hand_scores: (21,).
        face: (68, 2) float64 landmarks; face_scores: (68,).
    """

    body: np.ndarray
    body_scores: np.ndarray
    left_hand: np.ndarray
    left_hand_scores: np.ndarray
    right_hand: np.ndarray
    right_hand_scores: np.ndarray
    face: np.ndarray
    face_scores: np.ndarray
    height: int
    width: int


def largest_person(pose: Pose) -> int:
    """Index of the person with the largest box around their body keypoints (those scoring above 0.3, or all
    18 where none does): the stand-in for the reference's largest YOLO box (§3 "Detection"), since our
    detector keeps every person. Ties keep the higher detection score (the lower index).

    Raises:
        NoPersonError: the pose has no person.
    """
    if pose.num_persons == 0:
        raise NoPersonError("no person found: use a picture that shows one person, whole body if possible")
    areas = []
    for person in range(pose.num_persons):
        visible = pose.body_visible[person]
        points = pose.body[person][visible] if visible.any() else pose.body[person]
        extent = points.max(axis=0) - points.min(axis=0)
        areas.append(float(extent[0] * extent[1]))
    return int(np.argmax(areas))


def to_aapose(pose: Pose, image_hw: tuple[int, int], person: int | None = None) -> AAPose:
    """The reference's ``split_kp2ds_for_aa`` on one person of ``pose`` (the largest when ``person`` is None).

    Raises:
        NoPersonError: no person. ValueError: the pose has no feet (made before they were kept).
    """
    if pose.feet is None or pose.feet_scores is None:
        raise ValueError("Wan-Animate needs the feet of each pose: detect the poses again")
    index = largest_person(pose) if person is None else person
    body = np.concatenate([pose.body[index], pose.body_scores[index][:, None]], axis=1).astype(np.float64)
    feet = np.concatenate([pose.feet[index], pose.feet_scores[index][:, None]], axis=1).astype(np.float64)
    # (x, y, score) rows; each AAPose point is (a + b) / 2 of two rows, the reference's order of operands.
    aa = body.copy()  # rows 0..17 are OpenPose-18 = AAPose 0..17; a point averaged with itself is itself
    aa[1] = (body[_R_SHOULDER] + body[_L_SHOULDER]) / 2  # neck: COCO (6 + 5) / 2
    left_toe = (feet[_L_BIG_TOE] + feet[_L_SMALL_TOE]) / 2  # COCO (17 + 18) / 2
    right_toe = (feet[_R_BIG_TOE] + feet[_R_SMALL_TOE]) / 2  # COCO (20 + 21) / 2
    aa = np.concatenate([aa, left_toe[None], right_toe[None]])  # (20, 3)
    num_persons = pose.num_persons
    height, width = image_hw
    return AAPose(
        body=aa[:, :2].copy(),
        body_scores=aa[:, 2].copy(),
        left_hand=np.asarray(pose.hands[index], dtype=np.float64),
        left_hand_scores=np.asarray(pose.hand_scores[index], dtype=np.float64),
        right_hand=np.asarray(pose.hands[num_persons + index], dtype=np.float64),
        right_hand_scores=np.asarray(pose.hand_scores[num_persons + index], dtype=np.float64),
        face=np.asarray(pose.face[index], dtype=np.float64),
        face_scores=np.asarray(pose.face_scores[index], dtype=np.float64),
        height=height,
        width=width,
    )


def to_aapose_sequence(poses: list[Pose], image_hw: tuple[int, int]) -> list[AAPose]:
    """One AAPose per frame; a frame whose body points all lie off the frame's top-left (every point has a
    negative coordinate) reuses the previous frame's body, as the reference's ``load_pose_metas_from_kp2ds_seq``.

    Raises:
        NoPersonError: a frame without any person (our detector always gives one, so only a stored pose can).
    """
    sequence: list[AAPose] = []
    for pose in poses:
        aapose = to_aapose(pose, image_hw)
        if sequence and aapose.body.min(axis=1).max() < 0:
            previous = sequence[-1]
            aapose = dataclasses.replace(aapose, body=previous.body, body_scores=previous.body_scores)
        sequence.append(aapose)
    return sequence
