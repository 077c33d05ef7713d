"""A tiny, seeded, byte-deterministic model directory with the release layout (DESIGN.md, "Model directory").

Every torch tensor is non-zero (diffusers' and PoseNet's zero inits are replaced), and the two ONNX
files are small hand-built graphs with the real files' signatures whose outputs follow the image:
the detector finds exactly one person on any textured image and none on a flat one, and the pose
model places a plausible whole-body template with scores spread across the 0.3 threshold.
"""

from core.models.tiny.configs import (
    CLIP_CONFIG,
    FEATURE_EXTRACTOR_CONFIG,
    MODEL_INDEX,
    SCHEDULER_CONFIG,
    UNET_CONFIG,
    VAE_CONFIG,
)
from core.models.tiny.detector import build_detector
from core.models.tiny.directory import make_tiny_model
from core.models.tiny.pose_model import build_pose_model
from core.models.tiny.wholebody_template import keypoint_scores, wholebody_template

__all__ = [
    "CLIP_CONFIG", "FEATURE_EXTRACTOR_CONFIG", "MODEL_INDEX", "SCHEDULER_CONFIG", "UNET_CONFIG", "VAE_CONFIG",
    "build_detector", "build_pose_model", "keypoint_scores", "make_tiny_model", "wholebody_template",
]  # fmt: skip
