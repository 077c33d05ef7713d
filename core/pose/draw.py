"""Confidence-aware pose drawing, bit for bit as the original's draw_pose (reference §8).

Everything is drawn on a canvas whose short side is 2160 px, with brightness scaled by keypoint
confidence, then downscaled with OpenCV's bilinear resize. Coordinates and scores are used as float64,
as the original's DWPose produced them, so that every int() truncation lands where the original's did.
"""

import colorsys
import math

import cv2
import numpy as np

from core.pose.records import BODY_SCORE_THRESHOLD, Pose

CANVAS_SHORT_SIDE = 2160  # the original's ref_w
LIMB_SCORE_THRESHOLD = 0.3  # a limb needs both endpoint scores >= this (points need > 0.3)
LIMB_HALF_WIDTH = 4  # the original's stickwidth: the ellipse's minor semi-axis
LIMB_DIMMING = 0.6  # the whole canvas is scaled by this after the limbs, before the points
BODY_POINT_RADIUS = 4
HAND_LINE_THICKNESS = 2
HAND_POINT_RADIUS = 4
FACE_POINT_RADIUS = 3
MIN_PIXEL = 0.01  # the original's eps: integer pixel coordinates must exceed it, i.e. be >= 1

# The standard OpenPose palette, written as RGB; the original draws it into a canvas it later treats
# as BGR, so every colour comes out channel-reversed ((255, 0, 0) ends up blue).
BODY_COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip

# OpenPose limbs as 0-based keypoint pairs; the original lists 19 but draws only the first 17, which
# leaves out the two shoulder-ear pairs (2, 16) and (5, 17).
BODY_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip

# The OpenPose hand tree: from the wrist (0) out along each finger, thumb first.
HAND_EDGES = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
    (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20),
)  # fmt: skip


def draw_pose(pose: Pose, height: int, width: int) -> np.ndarray:
    """Draw every person of ``pose`` as the original does; returns (height, width, 3) uint8 RGB."""
    canvas = _blank_canvas(height, width)
    canvas = draw_bodies(canvas, pose)
    draw_hands(canvas, pose)
    draw_faces(canvas, pose)
    # Default INTER_LINEAR: plain bilinear, fixed-point for 8U (no area averaging on the way down).
    resized = cv2.resize(canvas, (width, height))
    return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)


def canvas_size(height: int, width: int) -> tuple[int, int]:
    """(Hc, Wc) of the drawing canvas: short side 2160, in the original's float arithmetic."""
    short_side = min(height, width)
    ratio = CANVAS_SHORT_SIDE / short_side if short_side != CANVAS_SHORT_SIDE else 1
    return int(height * ratio), int(width * ratio)


def _blank_canvas(height: int, width: int) -> np.ndarray:
    """Black (Hc, Wc, 3) uint8 canvas, drawn into as if it were BGR."""
    return np.zeros((*canvas_size(height, width), 3), dtype=np.uint8)


def draw_bodies(canvas: np.ndarray, pose: Pose) -> np.ndarray:
    """Limbs (limb by limb, every person), the 0.6 dimming, then the points; returns a new canvas."""
    body = np.asarray(pose.body, dtype=np.float64)  # (P, 18, 2)
    scores = np.asarray(pose.body_scores, dtype=np.float64)  # (P, 18)
    visible = scores > BODY_SCORE_THRESHOLD
    for limb, color in zip(BODY_LIMBS, BODY_COLORS, strict=False):
        for person in range(body.shape[0]):
            _draw_limb(canvas, body, scores, visible, person, limb, color)
    # Truncates toward zero, as numpy's astype does.
    canvas = (canvas * LIMB_DIMMING).astype(np.uint8)
    height, width = canvas.shape[:2]
    for keypoint, color in enumerate(BODY_COLORS):
        for person in range(body.shape[0]):
            if not visible[person, keypoint]:
                continue
            x, y = body[person, keypoint]
            score = scores[person, keypoint]
            center = (int(x * width), int(y * height))
            cv2.circle(canvas, center, BODY_POINT_RADIUS, _scaled(color, score), thickness=-1)
    return canvas


def _draw_limb(
    canvas: np.ndarray,
    body: np.ndarray,
    scores: np.ndarray,
    visible: np.ndarray,
    person: int,
    limb: tuple[int, int],
    color: tuple[int, int, int],
) -> None:
    score_a, score_b = scores[person, limb[0]], scores[person, limb[1]]
    if score_a < LIMB_SCORE_THRESHOLD or score_b < LIMB_SCORE_THRESHOLD:
        return
    # A score of exactly 0.3 passes this test but is not "visible"; the original then indexes its flat
    # candidate list with -1, i.e. takes the last keypoint of the last person.
    ends = np.stack([body[person, k] if visible[person, k] else body[-1, -1] for k in limb])  # (2, 2)
    height, width = canvas.shape[:2]
    xs = ends[:, 0] * float(width)
    ys = ends[:, 1] * float(height)
    length = ((ys[0] - ys[1]) ** 2 + (xs[0] - xs[1]) ** 2) ** 0.5
    angle = math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1]))
    center = (int(np.mean(xs)), int(np.mean(ys)))
    outline = cv2.ellipse2Poly(center, (int(length / 2), LIMB_HALF_WIDTH), int(angle), 0, 360, 1)
    polygon = np.asarray(outline, dtype=np.int32)  # (V, 2); already int32, typed as a sequence by cv2
    cv2.fillConvexPoly(canvas, polygon, _scaled(color, score_a * score_b))


def _scaled(color: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    """int(c * factor) per channel; OpenCV saturates values above 255 (raw scores may exceed 1)."""
    return (int(color[0] * factor), int(color[1] * factor), int(color[2] * factor))


def draw_hands(canvas: np.ndarray, pose: Pose) -> None:
    """Every hand (all left, then all right): its 20 edges, then its 21 points. No score threshold."""
    hands = np.asarray(pose.hands, dtype=np.float64)  # (2P, 21, 2)
    scores = np.asarray(pose.hand_scores, dtype=np.float64)  # (2P, 21)
    height, width = canvas.shape[:2]
    for points, point_scores in zip(hands, scores, strict=True):
        pixels = [(int(x * width), int(y * height)) for x, y in points]
        for edge_index, (a, b) in enumerate(HAND_EDGES):
            brightness = int(point_scores[a] * point_scores[b] * 255)
            if min(*pixels[a], *pixels[b]) > MIN_PIXEL:
                # A float colour: OpenCV rounds it (the original passes matplotlib's float RGB array).
                # OpenCV 5 sets other pixels where the line leaves the canvas: 4.10 is pinned for this.
                cv2.line(canvas, pixels[a], pixels[b], _hand_edge_color(edge_index, brightness),
                         thickness=HAND_LINE_THICKNESS)  # fmt: skip
        for pixel, score in zip(pixels, point_scores, strict=True):
            if min(pixel) > MIN_PIXEL:
                # (0, 0, s) in the BGR-treated canvas: the points come out red.
                cv2.circle(canvas, pixel, HAND_POINT_RADIUS, (0, 0, int(score * 255)), thickness=-1)


def _hand_edge_color(edge_index: int, brightness: int) -> tuple[float, float, float]:
    """HSV(e / 20, 1, 1) as RGB in [0, 1] (matplotlib's formula, which colorsys shares) times brightness."""
    red, green, blue = colorsys.hsv_to_rgb(edge_index / float(len(HAND_EDGES)), 1.0, 1.0)
    return (red * brightness, green * brightness, blue * brightness)


def draw_faces(canvas: np.ndarray, pose: Pose) -> None:
    """68 grey dots per face, brightness int(score * 255), no score threshold; drawn last."""
    faces = np.asarray(pose.face, dtype=np.float64)  # (P, 68, 2)
    scores = np.asarray(pose.face_scores, dtype=np.float64)  # (P, 68)
    height, width = canvas.shape[:2]
    for points, point_scores in zip(faces, scores, strict=True):
        for (x, y), score in zip(points, point_scores, strict=True):
            pixel = (int(x * width), int(y * height))
            grey = int(score * 255)
            if min(pixel) > MIN_PIXEL:
                cv2.circle(canvas, pixel, FACE_POINT_RADIUS, (grey, grey, grey), thickness=-1)
