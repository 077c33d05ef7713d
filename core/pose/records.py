"""Pose: the whole-body keypoints of every person in one frame, as DWPose gives them.

Coordinates are normalised to the frame (x / width, y / height) and every point keeps its raw
confidence, which the drawing turns into brightness (reference §6, §8). Shapes use P for persons.
"""

from dataclasses import dataclass

import numpy as np

BODY_SCORE_THRESHOLD = 0.3  # a body keypoint counts as detected above this (reference §6 step 7)


@dataclass(frozen=True)
class Pose:
    """Keypoints of all persons in one frame, highest detection score first.

    Attributes:
        body: (P, 18, 2) float, OpenPose-18 order (0 nose, 1 neck, ...).
        body_scores: (P, 18) float, raw confidences (may exceed 1).
        face: (P, 68, 2) float.
        face_scores: (P, 68) float.
        hands: (2P, 21, 2) float, all left hands first, then all right hands (the original's order).
        hand_scores: (2P, 21) float.
        feet: (P, 6, 2) float or None: COCO-WholeBody's raw points 17..22 (left big toe, left small toe,
            left heel, right big toe, right small toe, right heel), which OpenPose-18 drops. MimicMotion
            never draws them; Wan-Animate's skeleton has toes (wan-animate-reference §3). None for poses
            made before they were kept (e.g. the training pose store).
        feet_scores: (P, 6) float or None, with ``feet``.
    """

    body: np.ndarray
    body_scores: np.ndarray
    face: np.ndarray
    face_scores: np.ndarray
    hands: np.ndarray
    hand_scores: np.ndarray
    feet: np.ndarray | None = None
    feet_scores: np.ndarray | None = None

    @property
    def num_persons(self) -> int:
        return int(self.body.shape[0])

    @property
    def body_visible(self) -> np.ndarray:
        """(P, 18) bool: the original's ``subset != -1`` (score strictly above 0.3).

        Compared in float64 as the original's scores were: float32(0.3) > 0.3 would differ.
        """
        return self.body_scores.astype(np.float64) > BODY_SCORE_THRESHOLD
