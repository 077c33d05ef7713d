"""Face crops for the motion encoder, as the reference's ``get_face_bboxes`` and crop
(wan-animate-reference §3, "Face crops"): every frame, no score filter, 512 x 512 without keeping the aspect.
"""

import cv2
import numpy as np

from core.backends.wan_animate.aapose import AAPose

FACE_SIZE = 512
FACE_BOX_SCALE = 1.3  # the box's area grows by this factor


def face_box(pose: AAPose, image_hw: tuple[int, int], scale: float = FACE_BOX_SCALE) -> tuple[int, int, int, int]:
    """(x1, x2, y1, y2) in pixels: the 68 landmarks' box, grown to ``scale`` times its area at the same aspect,
    half the growth on each side horizontally, 3/4 of it above and 1/4 below; clipped, truncated to int."""
    height, width = image_hw
    points = pose.face * (width, height)  # the reference scales the normalised landmarks back by the frame
    min_x, min_y = np.min(points, axis=0)
    max_x, max_y = np.max(points, axis=0)
    initial_width, initial_height = max_x - min_x, max_y - min_y
    expanded_area = initial_width * initial_height * scale
    new_width = np.sqrt(expanded_area * (initial_width / initial_height))
    new_height = np.sqrt(expanded_area * (initial_height / initial_width))
    delta_width = (new_width - initial_width) / 2
    delta_height = (new_height - initial_height) / 4
    x1, x2 = max(min_x - delta_width, 0), min(max_x + delta_width, width)
    y1, y2 = max(min_y - 3 * delta_height, 0), min(max_y + delta_height, height)
    return int(x1), int(x2), int(y1), int(y2)


def crop_face(frame: np.ndarray, pose: AAPose) -> np.ndarray:
    """(h, w, 3) uint8 -> (512, 512, 3) uint8: the ``face_box`` crop of ``frame``, resized bilinearly.

    Where the box is empty (landmarks on one line or off the frame, where the reference would crash), the
    crop is black: the face condition the pipeline's unconditional pass uses (pixels all -1).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        points = pose.face * (frame.shape[1], frame.shape[0])
        extent = points.max(axis=0) - points.min(axis=0)
        if not (np.isfinite(points).all() and (extent > 0).all()):
            return np.zeros((FACE_SIZE, FACE_SIZE, 3), dtype=np.uint8)
    x1, x2, y1, y2 = face_box(pose, frame.shape[:2])
    if x2 <= x1 or y2 <= y1:
        return np.zeros((FACE_SIZE, FACE_SIZE, 3), dtype=np.uint8)
    return cv2.resize(frame[y1:y2, x1:x2], (FACE_SIZE, FACE_SIZE))
