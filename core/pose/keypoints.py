"""Top-down crop and SimCC decoding of the DWPose whole-body model, as the original does it (reference §6).

Pure numpy/OpenCV, with the original's dtypes at every step so the numbers agree exactly. Sizes are
(w, h) pairs, as in the original; K is the number of keypoints.
"""

import cv2
import numpy as np

BBOX_PADDING = 1.25  # the bbox is enlarged by this before cropping
SIMCC_SPLIT_RATIO = 2.0  # SimCC bins per input pixel
PIXEL_MEAN = np.array([123.675, 116.28, 103.53])  # RGB, float64 as in the original
PIXEL_STD = np.array([58.395, 57.12, 57.375])


def bbox_center_scale(box: np.ndarray, padding: float = BBOX_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """(x1, y1, x2, y2) -> center (cx, cy) and scale (w, h) * padding, both float64 (2,)."""
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64)
    center = np.array([x1 + x2, y1 + y2]) * 0.5
    scale = np.array([x2 - x1, y2 - y1]) * padding
    return center, scale


def fix_aspect_ratio(scale: np.ndarray, aspect: float = 288 / 384) -> np.ndarray:
    """Grow the shorter side of scale (w, h) until w / h == aspect."""
    w, h = scale
    if w > h * aspect:
        return np.array([w, w / aspect])
    return np.array([h * aspect, h])


def crop_affine(center: np.ndarray, scale: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """The 2x3 matrix that maps the box (center, scale) onto an output_size (w, h) crop, rotation 0.

    Built like the original: three float32 point pairs (center, a point half a box-width above it,
    and that offset turned 90 degrees) passed to cv2.getAffineTransform.
    """
    dst_w, dst_h = output_size
    src = np.zeros((3, 2), dtype=np.float32)
    src[0] = center
    src[1] = center + np.array([0.0, scale[0] * -0.5])
    src[2] = _third_point(src[0], src[1])
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + np.array([0.0, dst_w * -0.5])
    dst[2] = _third_point(dst[0], dst[1])
    return cv2.getAffineTransform(src, dst)


def warp_crop(image: np.ndarray, matrix: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """The original's cv2.warpAffine: bilinear, constant black border; (H, W, 3) uint8 -> (h, w, 3) uint8.

    Its pixels are OpenCV 4.x's fixed-point bilinear warp (pinned in pyproject.toml): OpenCV 5 computes
    this call with other kernels and gets other pixels (tests/unit/test_pose_warp_opencv4.py).
    """
    return cv2.warpAffine(image, matrix, output_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def crop_person(
    image: np.ndarray, box: np.ndarray, input_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop one person for the pose model.

    Args:
        image: (H, W, 3) uint8 RGB.
        box: (4,) xyxy in image pixels.
        input_size: the model's (w, h), e.g. (288, 384).

    Returns:
        crop (3, h, w) float32 normalised, center (2,) and the aspect-fixed scale (2,), float64.
    """
    w, h = input_size
    center, scale = bbox_center_scale(box)
    scale = fix_aspect_ratio(scale, aspect=w / h)
    matrix = crop_affine(center, scale, (w, h))
    warped = warp_crop(image, matrix, (int(w), int(h)))
    # The original normalises in float64 and hands ORT a list, which ORT casts to the model's float32.
    normalised = (warped - PIXEL_MEAN) / PIXEL_STD  # (h, w, 3) float64
    return normalised.transpose(2, 0, 1).astype(np.float32), center, scale


def decode_simcc(
    simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float = SIMCC_SPLIT_RATIO
) -> tuple[np.ndarray, np.ndarray]:
    """SimCC vectors (..., K, Wx) and (..., K, Wy) -> locations (..., K, 2) and scores (..., K), float32.

    Location is the argmax of each vector; score is min(max_x, max_y) on the raw values (no softmax).
    A keypoint with score <= 0 gets location -1 *before* the division by split_ratio, so -0.5.
    """
    locations = np.stack([simcc_x.argmax(axis=-1), simcc_y.argmax(axis=-1)], axis=-1).astype(np.float32)
    scores = np.minimum(simcc_x.max(axis=-1), simcc_y.max(axis=-1))
    locations[scores <= 0.0] = -1
    locations /= split_ratio
    return locations, scores


def crop_to_image(
    locations: np.ndarray, center: np.ndarray, scale: np.ndarray, input_size: tuple[int, int]
) -> np.ndarray:
    """Crop pixels (K, 2) -> image pixels (K, 2) float64: loc / (w, h) * scale + center - scale / 2."""
    size = np.asarray(input_size)  # ints: float32 / int64 promotes to float64, as in the original
    return locations / size * scale + center - scale / 2


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # The vector a - b turned 90 degrees anticlockwise about b.
    direction = a - b
    return b + np.array([-direction[1], direction[0]])
