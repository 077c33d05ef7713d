"""The skeleton drawings Wan-Animate was trained on: the reference's ``draw_aapose_by_meta_new`` with its
defaults (wan-animate-reference §3, "Drawing"), pixel for pixel.

Unlike MimicMotion's drawing (core/pose/draw.py): RGB colours as listed, drawn at the output size, binary
visibility at a 0.5 score, toes, no face. Coordinates are the normalised points times the frame size, in
float64, then truncated by ``int()`` where the reference truncates.
"""

import colorsys
import math

import cv2
import numpy as np

from core.backends.wan_animate.aapose import AAPose

SCORE_THRESHOLD = 0.5  # a point or limb is drawn when its scores are >= this
LIMB_DIMMING = 0.6  # limbs are filled with int(0.6 * colour), joints with the full colour
HAND_STICK_WIDTH = 4  # draw_aapose_by_meta_new's default hand_stick_width: hand lines and point radii
HAND_POINT_COLOR = (0, 0, 255)
MIN_PIXEL = 0.01  # the reference's eps: hand pixels must exceed it, i.e. be >= 1

# 1-based pairs over the 20 AAPose points, and one colour per limb (then per joint): the 18 OpenPose
# colours, then two for the feet.
LIMBS = (
    (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13), (13, 14),
    (2, 1), (1, 15), (15, 17), (1, 16), (16, 18), (14, 19), (11, 20),
)  # fmt: skip
COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
    (200, 200, 0), (100, 100, 0),
)  # fmt: skip
HAND_EDGES = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
    (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20),
)  # fmt: skip


def stick_width(height: int, width: int) -> int:
    """max(int(min(H, W) / 200) - 1, 1): 2 at a 720 short side, 1 at 512, 4 at 1080."""
    return max(int(min(height, width) / 200) - 1, 1)


def draw_aapose(pose: AAPose, height: int | None = None, width: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB: ``pose`` drawn on black at its own frame size (or ``height`` x ``width``, the
    canvas the reference draws on; the points are scaled by the pose's own size either way)."""
    canvas_h = pose.height if height is None else height
    canvas_w = pose.width if width is None else width
    canvas = np.zeros((canvas_h, canvas_w, 3), dtype=np.uint8)
    scale = (pose.width, pose.height)  # from_humanapi_meta: normalised points times the meta's size
    body = np.concatenate([pose.body * scale, pose.body_scores[:, None]], axis=1)  # (20, 3) pixels
    sw = stick_width(canvas_h, canvas_w)
    _draw_limbs(canvas, body, sw)
    _draw_joints(canvas, body, sw)
    for hand, scores in ((pose.left_hand, pose.left_hand_scores), (pose.right_hand, pose.right_hand_scores)):
        _draw_hand(canvas, np.concatenate([hand * scale, scores[:, None]], axis=1))
    return canvas


def _draw_limbs(canvas: np.ndarray, body: np.ndarray, sw: int) -> None:
    for (first, second), color in zip(LIMBS, COLORS, strict=False):
        a, b = body[first - 1], body[second - 1]
        if a[2] < SCORE_THRESHOLD or b[2] < SCORE_THRESHOLD:
            continue
        # The reference's names: X holds the y coordinates and Y the x ones.
        mean_x, mean_y = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
        length = ((a[1] - b[1]) ** 2 + (a[0] - b[0]) ** 2) ** 0.5
        angle = math.degrees(math.atan2(a[1] - b[1], a[0] - b[0]))
        outline = cv2.ellipse2Poly((int(mean_x), int(mean_y)), (int(length / 2), sw), int(angle), 0, 360, 1)
        polygon = np.asarray(outline, dtype=np.int32)  # (V, 2); already int32, typed as a sequence by cv2
        cv2.fillConvexPoly(canvas, polygon, [int(float(c) * LIMB_DIMMING) for c in color])


def _draw_joints(canvas: np.ndarray, body: np.ndarray, sw: int) -> None:
    for point, color in zip(body, COLORS, strict=True):
        if point[2] < SCORE_THRESHOLD:
            continue
        cv2.circle(canvas, (int(point[0]), int(point[1])), sw, color, thickness=-1)


def _draw_hand(canvas: np.ndarray, hand: np.ndarray) -> None:
    """``draw_handpose_new``: the 20 edges, then the 21 points, in pixels (21, 3)."""
    for edge_index, (first, second) in enumerate(HAND_EDGES):
        a, b = hand[first], hand[second]
        if a[2] < SCORE_THRESHOLD or b[2] < SCORE_THRESHOLD:
            continue
        x1, y1, x2, y2 = int(a[0]), int(a[1]), int(b[0]), int(b[1])
        if x1 > MIN_PIXEL and y1 > MIN_PIXEL and x2 > MIN_PIXEL and y2 > MIN_PIXEL:
            # A float colour, as matplotlib's hsv_to_rgb * 255 (colorsys shares its formula); OpenCV rounds it.
            red, green, blue = colorsys.hsv_to_rgb(edge_index / float(len(HAND_EDGES)), 1.0, 1.0)
            cv2.line(canvas, (x1, y1), (x2, y2), (red * 255, green * 255, blue * 255), thickness=HAND_STICK_WIDTH)
    for point in hand:
        if point[2] < SCORE_THRESHOLD:
            continue
        x, y = int(point[0]), int(point[1])
        if x > MIN_PIXEL and y > MIN_PIXEL:
            cv2.circle(canvas, (x, y), HAND_STICK_WIDTH, HAND_POINT_COLOR, thickness=-1)
