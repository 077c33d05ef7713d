"""Regional loss amplification: boxes around reliable hands, pooled to the latent grid as loss weights.

MimicMotion multiplies the loss by a factor inside boxes around hands whose keypoint confidences
all pass a threshold; the mask is downsampled to latent size and applied before the mean (the
maintainer in Tencent/MimicMotion#42; training.md §4.4). Shapes: F frames, H, W pixels, h, w latent.
"""

import numpy as np
import torch
import torch.nn.functional as F

from core.pose.records import Pose
from core.training import defaults

DEFAULT_HAND_THRESHOLD = defaults.HAND_THRESHOLD
DEFAULT_HAND_FACTOR = defaults.HAND_FACTOR
MARGIN_PX = 8  # a box grows by max(MARGIN_PX, MARGIN_FRACTION * its side) on each edge (training.md §4.4)
MARGIN_FRACTION = 0.1


def reliable_hands(pose: Pose, threshold: float) -> np.ndarray:
    """(2P,) bool: hands whose 21 scores are all above ``threshold`` (the paper's criterion, not the mean)."""
    return np.all(np.asarray(pose.hand_scores, dtype=np.float64) > threshold, axis=1)


def hand_boxes(pose: Pose, height: int, width: int, threshold: float) -> list[tuple[int, int, int, int]]:
    """Pixel boxes (x0, y0, x1, y1), end-exclusive and clipped to the frame, one per reliable hand.

    ``pose`` is in the frame's normalised coordinates. A hand entirely outside the frame gives no box.
    """
    boxes = []
    for hand in np.asarray(pose.hands, dtype=np.float64)[reliable_hands(pose, threshold)]:  # (21, 2)
        x0, y0 = hand.min(axis=0) * (width, height)
        x1, y1 = hand.max(axis=0) * (width, height)
        margin_x = max(MARGIN_PX, MARGIN_FRACTION * (x1 - x0))
        margin_y = max(MARGIN_PX, MARGIN_FRACTION * (y1 - y0))
        left, top = max(0, int(np.floor(x0 - margin_x))), max(0, int(np.floor(y0 - margin_y)))
        right, bottom = min(width, int(np.ceil(x1 + margin_x))), min(height, int(np.ceil(y1 + margin_y)))
        if right > left and bottom > top:
            boxes.append((left, top, right, bottom))
    return boxes


def hand_mask(pose: Pose, height: int, width: int, threshold: float) -> np.ndarray:
    """(H, W) float32: 1 inside any reliable hand's box, else 0."""
    mask = np.zeros((height, width), dtype=np.float32)
    for left, top, right, bottom in hand_boxes(pose, height, width, threshold):
        mask[top:bottom, left:right] = 1.0
    return mask


def latent_loss_weights(masks: np.ndarray, factor: float, scale_factor: int = 8) -> np.ndarray:
    """Per-latent-cell loss weights 1 + (factor - 1) * m, with m the mask's area fraction in each cell.

    Args:
        masks: (F, H, W) pixel masks in [0, 1]; frame 0 is the reference frame and keeps weight 1.
        scale_factor: pixels per latent cell (the VAE's 8).
    Returns:
        (F, H / scale_factor, W / scale_factor) float32.
    """
    height, width = masks.shape[1:]
    if height % scale_factor or width % scale_factor:
        raise ValueError(f"mask size {height}x{width} is not a multiple of the latent scale {scale_factor}")
    # Area pooling (soft edges, as ControlNeXt): a cell half covered by a box gets half the extra weight.
    pooled = F.avg_pool2d(torch.from_numpy(masks.astype(np.float32))[:, None], scale_factor)[:, 0].numpy()
    weights = 1.0 + (factor - 1.0) * pooled  # (F, h, w)
    weights[0] = 1.0  # frame 0 is the conditioning image itself, not a generated frame (training.md §4.4)
    return weights.astype(np.float32)
