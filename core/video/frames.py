"""Reference-image geometry: the target size, cover resize and center crop of reference §4.0.

Pure array code on numpy and torch; no file or video I/O here.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from core.errors import MediaError
from core.video.decode import frame_stride

__all__ = ["frame_stride", "prepare_reference_image", "resize_and_crop", "target_size"]

# reference §4.0 step 2: the original's constants.ASPECT_RATIO, the 9:16 frame SVD was trained on.
ASPECT_RATIO = 9 / 16
# Departure from the original: a 1 x 40000 strip would cover-resize to 576 x 23 million pixels and
# exhaust memory, so a cover resize larger than this many target areas is refused.
MAX_COVER_AREA_RATIO = 16


def target_size(height: int, width: int, resolution: int) -> tuple[int, int]:
    """The (H_t, W_t) output size for an input of (height, width) at ``resolution`` (reference §4.0 step 2).

    Portrait inputs (height > width) get (long side, resolution); landscape **and square** inputs get
    (resolution, long side), where the long side is ``resolution / (9/16)`` floored to a multiple of 64:
    576 -> 1024, 512 -> 896, 768 -> 1344.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got height={height}, width={width}")
    if resolution <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    long_side = int(resolution / ASPECT_RATIO // 64) * 64
    if height > width:
        return long_side, resolution
    return resolution, long_side


def cover_size(height: int, width: int, target_height: int, target_width: int) -> tuple[int, int]:
    """The (H_r, W_r) that covers the target box while keeping the aspect ratio (reference §4.0 step 3).

    The side that would fall short is rounded up with ``math.ceil`` on Python floats, as the original does.
    """
    h_w_ratio = float(height) / float(width)
    if h_w_ratio < target_height / target_width:
        return target_height, math.ceil(target_height / h_w_ratio)
    return math.ceil(target_width * h_w_ratio), target_width


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (H, W, 3) uint8 to (height, width, 3) uint8 like torchvision ``resize(antialias=None)``.

    torchvision casts the uint8 tensor to float32, interpolates bilinearly with half-pixel centres
    (align_corners=False) and no antialias, then rounds half to even before casting back. Bilinear
    weights are convex, so the clamp never changes a value; it only guards the cast.
    """
    pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(torch.float32)  # (1, 3, H, W)
    resized = F.interpolate(pixels, size=(height, width), mode="bilinear", align_corners=False, antialias=False)
    resized = torch.round(resized).clamp(0, 255).to(torch.uint8)  # (1, 3, height, width)
    return resized[0].permute(1, 2, 0).contiguous().numpy()


def center_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Crop (H, W, C) to (height, width, C) around the centre, offsets as torchvision ``center_crop``.

    top = int(round((H - height) / 2)) with Python's round, which rounds half to even: an excess of 1
    gives top 0, an excess of 3 gives top 2 (reference §4.0 step 4).
    """
    image_height, image_width = image.shape[:2]
    if height > image_height or width > image_width:
        raise ValueError(f"crop {height}x{width} is larger than the image {image_height}x{image_width}")
    top = int(round((image_height - height) / 2.0))
    left = int(round((image_width - width) / 2.0))
    return image[top : top + height, left : left + width]


def resize_and_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Cover-resize then center-crop an (H, W, 3) uint8 RGB image to (height, width, 3) uint8.

    Reference §4.0 steps 3-4 exactly, so the result equals the array the original feeds to DWPose.

    Raises:
        MediaError: the aspect ratio is so extreme that the cover resize would exceed
            ``MAX_COVER_AREA_RATIO`` times the target area (the original would run out of memory).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got shape {image.shape} dtype {image.dtype}")
    if height <= 0 or width <= 0:
        raise ValueError(f"target size must be positive, got height={height}, width={width}")
    resize_height, resize_width = cover_size(image.shape[0], image.shape[1], height, width)
    if resize_height * resize_width > MAX_COVER_AREA_RATIO * height * width:
        raise MediaError(
            f"the image's aspect ratio ({image.shape[1]}x{image.shape[0]}) is too far from the "
            f"{width}x{height} output: less than 1/{MAX_COVER_AREA_RATIO} of it would remain after cropping"
        )
    resized = resize_bilinear(image, resize_height, resize_width)
    return np.ascontiguousarray(center_crop(resized, height, width))


def prepare_reference_image(image: np.ndarray, resolution: int) -> np.ndarray:
    """The reference image as the pipeline and DWPose see it: (H_t, W_t, 3) uint8 (reference §4.0 1-5)."""
    target_height, target_width = target_size(image.shape[0], image.shape[1], resolution)
    return resize_and_crop(image, target_height, target_width)
