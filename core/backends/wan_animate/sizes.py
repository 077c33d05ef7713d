"""Output sizes and letterboxing, as the reference's ``resize_by_area`` and ``padding_resize``
(wan-animate-reference §3, "Sizes").

The reference's exact size search always raises (a three-argument call to a two-argument helper), so its
fallback formula is the one that runs, and the only one here.
"""

import math

import cv2
import numpy as np

from core.errors import MediaError

SIZE_DIVISOR = 16


def area_size(height: int, width: int, area: int, divisor: int = SIZE_DIVISOR) -> tuple[int, int]:
    """(h', w') of about ``area`` pixels at the aspect ratio of ``height`` x ``width``, each side floored to a
    multiple of ``divisor``: h' = sqrt(area * h / w), w' = area / h' (1920x1080 at 1280*720 gives 1280x720).

    Raises:
        MediaError: a side comes out below ``divisor`` (an extreme aspect ratio): the job fails as invalid_media.
    """
    aspect_ratio = width / height
    new_h = math.sqrt(area / aspect_ratio)
    new_w = area / new_h
    size = int((new_h // divisor) * divisor), int((new_w // divisor) * divisor)
    if min(size) <= 0:
        raise MediaError(
            f"the {width}x{height} reference image is too narrow: at this resolution a side would be under "
            f"{divisor} pixels; use an image closer to the output's shape"
        )
    return size


def padding_resize(image: np.ndarray, height: int, width: int, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Letterbox (h, w, 3) uint8 onto a black (height, width, 3): the side that fits is resized to full size,
    the other to int(scale * size), centred with int(padding / 2) on the left or top."""
    ori_height, ori_width = image.shape[:2]
    canvas = np.zeros((height, width, image.shape[2]), dtype=np.uint8)
    if (ori_height / ori_width) > (height / width):
        new_width = int(height / ori_height * ori_width)
        padding = int((width - new_width) / 2)
        canvas[:, padding : padding + new_width] = cv2.resize(image, (new_width, height), interpolation=interpolation)
    else:
        new_height = int(width / ori_width * ori_height)
        padding = int((height - new_height) / 2)
        canvas[padding : padding + new_height] = cv2.resize(image, (width, new_height), interpolation=interpolation)
    return canvas


def resize_by_area(image: np.ndarray, area: int, divisor: int = SIZE_DIVISOR) -> np.ndarray:
    """(h, w, 3) uint8 -> (h', w', 3) uint8 at ``area_size``, letterboxed; INTER_AREA when shrinking, else
    INTER_LINEAR."""
    height, width = image.shape[:2]
    new_h, new_w = area_size(height, width, area, divisor)
    interpolation = cv2.INTER_AREA if new_w * new_h < width * height else cv2.INTER_LINEAR
    return padding_resize(image, new_h, new_w, interpolation)
