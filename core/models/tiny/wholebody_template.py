"""The whole-body template (COCO-WholeBody order) in 288x384 crop pixels, and its scores: what the tiny
pose model places on every person.
"""

import numpy as np

POSE_INPUT_HW = (384, 288)  # the pose model's crop, h x w
NUM_KEYPOINTS = 133

# 17 body points, COCO order; the person faces the camera, so their left is on the image's right.
_BODY = (
    ("nose", 144, 70, 0.92),
    ("left_eye", 152, 62, 0.88),
    ("right_eye", 136, 62, 0.90),
    ("left_ear", 162, 66, 0.70),
    ("right_ear", 126, 66, 0.65),
    ("left_shoulder", 184, 110, 0.95),
    ("right_shoulder", 104, 110, 0.93),
    ("left_elbow", 200, 165, 0.20),  # below 0.3: the limb is not drawn
    ("right_elbow", 88, 165, 0.80),
    ("left_wrist", 208, 215, 0.55),
    ("right_wrist", 80, 215, 0.25),  # below 0.3
    ("left_hip", 170, 215, 0.85),
    ("right_hip", 118, 215, 0.87),
    ("left_knee", 172, 280, 0.78),
    ("right_knee", 116, 280, 0.80),
    ("left_ankle", 174, 340, 0.70),
    ("right_ankle", 114, 340, 0.72),
)
# 6 feet: left big toe, small toe, heel; right big toe, small toe, heel.
_FEET = ((184, 352, 0.35), (194, 350, 0.28), (170, 346, 0.50), (104, 352, 0.45), (94, 350, 0.15), (118, 346, 0.60))
_FACE_CENTRE = (144.0, 66.0)
_TEMPLATE_SHRINK = 0.88


def wholebody_template() -> np.ndarray:
    """(133, 2) float32 keypoint locations (x, y) in crop pixels: body, feet, face (68), left and right hand."""
    body = [(x, y) for _, x, y, _ in _BODY]
    feet = [(x, y) for x, y, _ in _FEET]
    left_wrist, right_wrist = body[9], body[10]
    points = np.array(body + feet, dtype=np.float64)
    points = np.concatenate([points, _face(*_FACE_CENTRE), _hand(left_wrist, 1.0), _hand(right_wrist, -1.0)])
    assert points.shape == (NUM_KEYPOINTS, 2)
    # Shrink toward the crop centre: the head then sits well inside the detector box (the crop pads the
    # box by 1.25), so a person whose box touches the frame's top still has their eyes in the frame.
    crop_centre = np.array([POSE_INPUT_HW[1], POSE_INPUT_HW[0]]) / 2
    return (crop_centre + (points - crop_centre) * _TEMPLATE_SHRINK).astype(np.float32)


def keypoint_scores() -> np.ndarray:
    """(133,) float32 template scores: body mostly above 0.3 (left elbow 0.2, right wrist 0.25), face
    spread over 0.2..0.9, each hand over 0.05..1.0 (co-prime strides scatter the values over the points).
    """
    body = [score for *_, score in _BODY]
    feet = [score for *_, score in _FEET]
    face = 0.2 + 0.7 * ((np.arange(68) * 37) % 68) / 67
    left_hand = 0.05 + 0.95 * ((np.arange(21) * 8) % 21) / 20
    right_hand = 0.05 + 0.95 * ((np.arange(21) * 13) % 21) / 20
    return np.concatenate([body, feet, face, left_hand, right_hand]).astype(np.float32)


def _face(centre_x: float, centre_y: float) -> np.ndarray:
    """The 68 iBUG landmarks: jaw, brows, nose, eyes, mouth, around a head centre."""

    def ellipse(cx: float, cy: float, rx: float, ry: float, count: int) -> list[tuple[float, float]]:
        angles = np.pi - 2 * np.pi * np.arange(count) / count
        return [(cx + rx * np.cos(a), cy - ry * np.sin(a)) for a in angles]

    jaw_angles = np.pi * np.arange(17) / 16
    jaw = [(centre_x - 16 * np.cos(a), centre_y - 4 + 22 * np.sin(a)) for a in jaw_angles]
    right_brow = [(centre_x - 14 + 2.5 * i, centre_y - 12) for i in range(5)]
    left_brow = [(centre_x + 4 + 2.5 * i, centre_y - 12) for i in range(5)]
    bridge = [(centre_x, centre_y - 8 + 3 * i) for i in range(4)]
    nostrils = [(centre_x - 4 + 2 * i, centre_y + 4) for i in range(5)]
    right_eye = ellipse(centre_x - 8, centre_y - 6, 3, 1.5, 6)
    left_eye = ellipse(centre_x + 8, centre_y - 6, 3, 1.5, 6)
    outer_lips = ellipse(centre_x, centre_y + 10, 7, 3, 12)
    inner_lips = ellipse(centre_x, centre_y + 10, 4, 1.5, 8)
    parts = jaw + right_brow + left_brow + bridge + nostrils + right_eye + left_eye + outer_lips + inner_lips
    return np.array(parts, dtype=np.float64)


def _hand(wrist: tuple[float, float], side: float) -> np.ndarray:
    """21 hand points hanging down from the wrist: wrist, then thumb, index, middle, ring, pinky (4 each).

    ``side`` is +1 for the hand on the image's right (the person's left); the thumb is on the outer side.
    """
    wrist_x, wrist_y = wrist
    points = [(wrist_x, wrist_y)]
    for finger, lateral in enumerate((-8.0, -4.0, 0.0, 4.0, 8.0)):
        length = 4.0 if finger == 0 else 6.0  # the thumb is shorter
        for joint in range(1, 5):
            points.append((wrist_x - side * lateral * (0.5 + 0.15 * joint), wrist_y + 4 + length * joint))
    return np.array(points, dtype=np.float64)
