"""Per-job conditioning shared by every tile: CLIP embedding, VAE image latent, time ids, pose latents.

Each function mirrors one step of the original pipeline (reference §4.0 step 8, §4.1 steps 2-5) and
runs once per job. Shapes: H, W pixels; h, w = H/8, W/8 latent; N' = frames with the reference frame.
"""

import numpy as np
import torch
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing

from core.models.loading import MimicMotionModels

CLIP_SIZE = (224, 224)
# Stable Video Diffusion was conditioned on fps - 1; the original hard-codes fps 7 (reference §4.0 step 10).
MICRO_CONDITIONING_FPS = 7
MOTION_BUCKET_ID = 127
_POSE_CHUNK_FRAMES = 16  # PoseNet frames per call: bounds the full-resolution activations


def round_trip_image(image: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """The original's lossy pixel round trip in the run dtype: u8/127.5 - 1, then (x + 1)*127.5, truncated.

    Reference §4.0 step 8: the pipeline sees this image, not the one DWPose saw (fp16 turns a few
    pixel values into v - 1; float32 turns 1..63 into v - 1). (H, W, 3) uint8 -> (H, W, 3) uint8.
    """
    pixels = torch.from_numpy(image).to(dtype) / 127.5 - 1
    return ((pixels + 1.0) * 127.5).to(torch.uint8).numpy()


def encode_image(models: MimicMotionModels, image: np.ndarray) -> torch.Tensor:
    """CLIP image embedding, (H, W, 3) uint8 -> (1, 1, D) in the run dtype (reference §4.1 step 2).

    The preprocessing runs on CPU in float32, as the original's did, so it is identical everywhere:
    [-1, 1], antialiased bicubic squash to 224x224 (no crop), back to [0, 1], CLIP mean/std.
    """
    pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0  # (1, 3, H, W)
    pixels = _resize_with_antialiasing(pixels * 2.0 - 1.0, CLIP_SIZE)
    pixels = (pixels + 1.0) / 2.0
    mean = torch.tensor(models.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(models.image_std).view(1, 3, 1, 1)
    pixels = (pixels - mean) / std
    image_embeddings = models.image_encoder(pixels.to(models.device, models.dtype)).image_embeds  # (1, D)
    return image_embeddings.unsqueeze(1)


def encode_vae_image(
    models: MimicMotionModels, image: np.ndarray, noise_aug_strength: float, generator: torch.Generator
) -> torch.Tensor:
    """Noise-augmented VAE latent of the reference image, (H, W, 3) uint8 -> (1, 4, h, w) (reference §4.1 step 4).

    The latent is the posterior mean, not scaled by the VAE scaling factor (SVD convention).
    """
    # Channels-last strides, as the original's VaeImageProcessor hands the VAE (its convolutions pick other kernels).
    pixels = torch.from_numpy(image)[None].float().permute(0, 3, 1, 2) / 255.0 * 2.0 - 1.0  # (1, 3, H, W)
    # RNG draw 1: always drawn, even at strength 0, so the next draw sees the original's generator state.
    noise = torch.randn(pixels.shape, generator=generator, dtype=torch.float32)
    pixels = pixels + noise_aug_strength * noise
    # The VAE may live on the CPU in float32 (PerformanceOptions.vae_device); the latent joins the UNet.
    latent = models.vae.encode(pixels.to(models.vae.device, models.vae.dtype)).latent_dist.mode()
    return latent.to(models.device, models.dtype)


def added_time_ids(models: MimicMotionModels, noise_aug_strength: float) -> torch.Tensor:
    """SVD micro-conditioning [fps - 1, motion bucket, noise strength], (1, 3) in the run dtype."""
    ids = [MICRO_CONDITIONING_FPS - 1, MOTION_BUCKET_ID, noise_aug_strength]
    expected = models.unet.add_embedding.linear_1.in_features
    if models.unet.config["addition_time_embed_dim"] * len(ids) != expected:
        raise ValueError(
            f"unet config: addition_time_embed_dim * {len(ids)} must equal the add-embedding width {expected}"
        )
    return torch.tensor([ids], dtype=models.dtype, device=models.device)


def encode_poses(models: MimicMotionModels, pose_frames: np.ndarray) -> torch.Tensor:
    """PoseNet latents for every frame once, (N', H, W, 3) uint8 -> (N', C, h, w) in the run dtype.

    PoseNet is purely per-frame, so one pass per job equals the original's per-tile, per-step
    recomputation (reference §5, speed opportunities). Pixels become u8/127.5 - 1 in the run dtype.
    """
    chunks = []
    for start in range(0, len(pose_frames), _POSE_CHUNK_FRAMES):
        frames = torch.from_numpy(pose_frames[start : start + _POSE_CHUNK_FRAMES]).to(models.device)
        # Contiguous NCHW, as the original's pose frames are (drawn as 3xHxW): not a channels-last view.
        pixels = frames.permute(0, 3, 1, 2).contiguous().to(models.dtype) / 127.5 - 1  # (n, 3, H, W)
        chunks.append(models.pose_net(pixels))
    return torch.cat(chunks)
