"""make_tiny_model: the whole tiny model directory, component by component, in the release layout."""

import json
from pathlib import Path

import diffusers
from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from core.models.files import CHECKPOINT_FILE, DETECTOR_FILE, POSE_MODEL_FILE, SVD_DIR, TINY_MARKER_FILE
from core.models.pose_net import PoseNet
from core.models.tiny.configs import (
    CLIP_CONFIG,
    FEATURE_EXTRACTOR_CONFIG,
    MODEL_INDEX,
    SCHEDULER_CONFIG,
    UNET_CONFIG,
    VAE_CONFIG,
)
from core.models.tiny.detector import build_detector
from core.models.tiny.onnx_graph import save_onnx
from core.models.tiny.pose_model import build_pose_model
from core.models.tiny.weights import diffusers_config, save_checkpoint, save_safetensors, seeded, write_json


def make_tiny_model(out_dir: Path, seed: int = 0) -> None:
    """Write the tiny model directory to ``out_dir`` (created if needed; existing files are replaced).

    The same ``seed`` gives the same bytes in every file.
    """
    out_dir = Path(out_dir)
    svd_dir = out_dir / SVD_DIR
    # 1. The SVD diffusers folder: configs, VAE and CLIP weights (the UNet is config-only, reference §2).
    unet = seeded(lambda: UNetSpatioTemporalConditionModel(**UNET_CONFIG), seed, seed_offset=0)
    vae = seeded(lambda: AutoencoderKLTemporalDecoder(**VAE_CONFIG), seed, seed_offset=1)
    clip_config = CLIPVisionConfig(**CLIP_CONFIG, architectures=["CLIPVisionModelWithProjection"])
    image_encoder = seeded(lambda: CLIPVisionModelWithProjection(clip_config), seed, seed_offset=2)
    write_json(svd_dir / "model_index.json", {**MODEL_INDEX, "_diffusers_version": diffusers.__version__})
    write_json(svd_dir / "unet" / "config.json", diffusers_config(unet))
    write_json(svd_dir / "vae" / "config.json", diffusers_config(vae))
    save_safetensors(vae, svd_dir / "vae" / "diffusion_pytorch_model.safetensors")
    write_json(svd_dir / "image_encoder" / "config.json", json.loads(clip_config.to_json_string()))
    save_safetensors(image_encoder, svd_dir / "image_encoder" / "model.safetensors")
    write_json(svd_dir / "feature_extractor" / "preprocessor_config.json", FEATURE_EXTRACTOR_CONFIG)
    write_json(svd_dir / "scheduler" / "scheduler_config.json", SCHEDULER_CONFIG)
    # 2. The MimicMotion checkpoint: UNet and PoseNet weights under their container prefixes.
    pose_net = seeded(lambda: PoseNet(out_channels=UNET_CONFIG["block_out_channels"][0]), seed, seed_offset=3)
    save_checkpoint({"unet": unet, "pose_net": pose_net}, out_dir / CHECKPOINT_FILE)
    # 3. The DWPose ONNX files.
    save_onnx(build_detector(), out_dir / DETECTOR_FILE)
    save_onnx(build_pose_model(), out_dir / POSE_MODEL_FILE)
    # 4. A marker, so services can say loudly that they run random weights.
    write_json(out_dir / TINY_MARKER_FILE, {"tiny": True, "seed": seed})
