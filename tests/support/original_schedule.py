"""A straight, slow re-implementation of the ORIGINAL MimicMotion call, the yardstick for fidelity tests.

It follows reference §4.0 steps 7-8, §4.1 and §5 line by line, with the original's own structure:
PIL round trip, CFG batch of 2 built by concatenation, per step and per tile PoseNet on the tile's
pose frames, an uncond batch-1 UNet call (zero CLIP embedding, zero image latents, no pose) then a
cond call, fused accumulation, CFG after fusion, and the scheduler's unused per-step draw. It shares
no code with core.pipeline beyond the models; float32 on CPU only.
"""

import numpy as np
import PIL.Image
import torch
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing
from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteScheduler

from core.models.loading import MimicMotionModels


@torch.no_grad()
def run_original_schedule(
    models: MimicMotionModels,
    image: np.ndarray,
    pose_frames: np.ndarray,
    *,
    seed: int,
    num_inference_steps: int,
    guidance_scale: float,
    noise_aug_strength: float,
    tile_size: int,
    tile_overlap: int,
    sigma_schedule: str,
    decode_chunk_size: int,
) -> np.ndarray:
    """(H, W, 3) uint8 image and (N', H, W, 3) uint8 poses -> (N' - 1, H, W, 3) uint8 frames.

    Takes the pipeline's arguments; ``sigma_schedule`` must be "karras", the original's only schedule.
    """
    assert models.dtype == torch.float32 and models.device.type == "cpu"
    assert sigma_schedule == "karras", f"the original has only the Karras sigmas, got {sigma_schedule!r}"
    unet, vae = models.unet, models.vae
    num_frames = len(pose_frames)
    height, width = image.shape[:2]
    # §4.0 steps 7-8: x/127.5 - 1 for both tensors, then the image goes back to PIL through (x+1)*127.5.
    image_pixels = torch.from_numpy(image).permute(2, 0, 1) / 127.5 - 1
    # The original's pose frames are (N', 3, H, W) arrays: contiguous NCHW, not a permuted NHWC view.
    pose_pixels = torch.from_numpy(pose_frames.transpose(0, 3, 1, 2).copy()) / 127.5 - 1
    pil_image = PIL.Image.fromarray(((image_pixels + 1.0) * 127.5).to(torch.uint8).permute(1, 2, 0).numpy())
    generator = torch.Generator("cpu").manual_seed(seed)
    image_processor = VaeImageProcessor(vae_scale_factor=8)

    # §4.1 step 2: CLIP embedding, float32, [zeros, embedding].
    clip_input = image_processor.numpy_to_pt(image_processor.pil_to_numpy([pil_image]))
    clip_input = _resize_with_antialiasing(clip_input * 2.0 - 1.0, (224, 224))
    clip_input = ((clip_input + 1.0) / 2.0).numpy()
    mean = np.array(models.image_mean, dtype=np.float32)[None, :, None, None]
    std = np.array(models.image_std, dtype=np.float32)[None, :, None, None]
    clip_input = torch.from_numpy((clip_input - mean) / std)
    embedding = models.image_encoder(clip_input).image_embeds.unsqueeze(1)
    image_embeddings = torch.cat([torch.zeros_like(embedding), embedding])

    # §4.1 step 3: fps 7 - 1.  Step 4: VAE path with the first random draw.
    vae_input = image_processor.preprocess(pil_image, height=height, width=width)
    noise = torch.randn(vae_input.shape, generator=generator, dtype=vae_input.dtype)
    vae_input = vae_input + noise_aug_strength * noise
    latent = vae.encode(vae_input).latent_dist.mode()
    image_latents = torch.cat([torch.zeros_like(latent), latent]).unsqueeze(1).repeat(1, num_frames, 1, 1, 1)

    # Step 5: added time ids, both rows identical.
    added_time_ids = torch.tensor([[7 - 1, 127, noise_aug_strength]]).repeat(2, 1)

    # Step 6: timesteps.
    scheduler = EulerDiscreteScheduler.from_config(models.scheduler_config)
    scheduler.set_timesteps(num_inference_steps, device="cpu")

    # Step 7: one tile of noise (second draw), scaled, repeated periodically.
    latent_h, latent_w = height // 8, width // 8
    latents = torch.randn((1, tile_size, 4, latent_h, latent_w), generator=generator, dtype=torch.float32)
    latents = latents * scheduler.init_noise_sigma
    latents = latents.repeat(1, num_frames // tile_size + 1, 1, 1, 1)[:, :num_frames]

    # Step 9: guidance over the whole video.  Step 10 (§5): tiles and weights, written out as the original.
    guidance = torch.linspace(guidance_scale, guidance_scale, num_frames).unsqueeze(0)[..., None, None, None]
    indices = [
        [0, *range(i + 1, min(i + tile_size, num_frames))]
        for i in range(0, num_frames - tile_size + 1, tile_size - tile_overlap)
    ]
    if indices[-1][-1] < num_frames - 1:
        indices.append([0, *range(num_frames - tile_size + 1, num_frames)])

    # Step 12: the denoising loop.
    for t in scheduler.timesteps:
        latent_model_input = scheduler.scale_model_input(torch.cat([latents] * 2), t)
        latent_model_input = torch.cat([latent_model_input, image_latents], dim=2)
        noise_pred = torch.zeros_like(image_latents)
        noise_pred_cnt = torch.zeros(num_frames)
        weight = (torch.arange(tile_size) + 0.5) * 2.0 / tile_size
        weight = torch.minimum(weight, 2 - weight)
        for idx in indices:
            pose_latents = models.pose_net(pose_pixels[idx])
            uncond = unet(
                latent_model_input[:1, idx], t, encoder_hidden_states=image_embeddings[:1],
                added_time_ids=added_time_ids[:1], pose_latents=None, return_dict=False,
            )[0]  # fmt: skip
            noise_pred[:1, idx] += uncond * weight[:, None, None, None]
            cond = unet(
                latent_model_input[1:, idx], t, encoder_hidden_states=image_embeddings[1:],
                added_time_ids=added_time_ids[1:], pose_latents=pose_latents, return_dict=False,
            )[0]  # fmt: skip
            noise_pred[1:, idx] += cond * weight[:, None, None, None]
            noise_pred_cnt[idx] += weight
        noise_pred.div_(noise_pred_cnt[:, None, None, None])
        noise_pred_uncond, noise_pred_cond = noise_pred.chunk(2)
        noise_pred = noise_pred_uncond + guidance * (noise_pred_cond - noise_pred_uncond)
        # Third draw: diffusers 0.27's Euler step drew this every step and never used it (gamma = 0);
        # diffusers 0.42 no longer draws it, so we do, to keep the original's generator state.
        torch.randn(noise_pred.shape, generator=generator, dtype=noise_pred.dtype)
        latents = scheduler.step(noise_pred, t, latents, return_dict=False)[0]

    # Step 13: chunked decode; step 14: clamp, *255, truncate, drop the reference frame.
    flat = 1 / vae.config["scaling_factor"] * latents.flatten(0, 1)
    decoded = [
        vae.decode(flat[i : i + decode_chunk_size], num_frames=len(flat[i : i + decode_chunk_size])).sample
        for i in range(0, len(flat), decode_chunk_size)
    ]
    frames = (torch.cat(decoded).float() / 2 + 0.5).clamp(0, 1)
    frames = (frames * 255).to(torch.uint8)[1:]
    return frames.permute(0, 2, 3, 1).numpy()
