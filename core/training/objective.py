"""One training forward pass: frozen encoders, conditioning dropout, the pose-conditioned UNet, the loss.

Conditioning is computed with the inference functions (``core.pipeline.conditioning``), so what the
UNet sees in training is what it sees at inference. Shapes: B samples, F frames (frame 0 = the
reference), H, W pixels, h, w = H/8, W/8, C = PoseNet channels, D = CLIP width.
"""

from dataclasses import dataclass

import torch
from torch import nn

from core.models.loading import MimicMotionModels
from core.models.pose_net import PoseNet
from core.models.unet import PoseConditionedUNet
from core.pipeline import conditioning
from core.training import edm

_VAE_CHUNK_FRAMES = 8  # frames per VAE encode call: bounds the encoder's full-resolution activations


class TrainableModel(nn.Module):
    """UNet + PoseNet as one module, so DDP wraps both and ``state_dict`` has the release's key layout."""

    def __init__(self, unet: PoseConditionedUNet, pose_net: PoseNet) -> None:
        super().__init__()
        self.unet = unet
        self.pose_net = pose_net

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        image_embeddings: torch.Tensor,
        added_time_ids: torch.Tensor,
        pose_pixels: torch.Tensor,
        pose_keep: torch.Tensor,
    ) -> torch.Tensor:
        """Args: sample (B, F, 8, h, w); timestep (B,) c_noise; image_embeddings (B, 1, D); added_time_ids
        (B, 3); pose_pixels (B, F, 3, H, W) in [-1, 1]; pose_keep (B,) 1 or 0. Returns F (B, F, 4, h, w).

        A dropped sample's pose latents are multiplied by 0, which reaches the UNet as exactly the
        inference uncond branch (no pose: conv_in(x) + 0 == conv_in(x)), while PoseNet stays in the
        graph for every sample (DDP expects every parameter to get a gradient each step).
        """
        batch_size, num_frames = sample.shape[:2]
        pose_latents = self.pose_net(pose_pixels.flatten(0, 1)).unflatten(0, (batch_size, num_frames))
        pose_latents = pose_latents * pose_keep.view(batch_size, 1, 1, 1, 1).to(pose_latents.dtype)
        return self.unet(
            sample, timestep, image_embeddings, added_time_ids, pose_latents=pose_latents, return_dict=False
        )[0]


@dataclass
class EncodedBatch:
    """The frozen encoders' outputs for one batch, before dropout."""

    latents: torch.Tensor  # (B, F, 4, h, w) float32 x0: VAE sample() * scaling_factor
    image_embeddings: torch.Tensor  # (B, 1, D) float32 CLIP embedding of the reference frame
    image_latents: torch.Tensor  # (B, 4, h, w) float32 reference latent: mode(), unscaled (SVD convention)
    pose_pixels: torch.Tensor  # (B, F, 3, H, W) float32 in [-1, 1]
    loss_weights: torch.Tensor  # (B, F, h, w) float32 hand weights


@dataclass
class ForwardOutputs:
    """Everything behind one loss value (the tests recompute the loss the long way from these)."""

    loss: torch.Tensor  # () float32
    model_output: torch.Tensor  # (B, F, 4, h, w) F
    latents: torch.Tensor  # (B, F, 4, h, w) x0
    noise: torch.Tensor  # (B, F, 4, h, w) eps
    sigmas: torch.Tensor  # (B,)
    loss_weights: torch.Tensor  # (B, F, h, w)
    keep: torch.Tensor  # (B,) 1 = conditioned, 0 = all conditions dropped


@torch.no_grad()
def encode_batch(
    frozen: MimicMotionModels, batch: dict[str, torch.Tensor], noise_aug_strength: float, generator: torch.Generator
) -> EncodedBatch:
    """Run the frozen VAE and CLIP on a dataset batch (``frames`` and ``pose_frames`` (B, F, H, W, 3) uint8).

    The reference (frame 0) goes through the pipeline's own steps: the pixel round trip in the run
    dtype, ``encode_image`` and ``encode_vae_image`` (reference §4.0 step 8, §4.1 steps 2, 4).
    """
    frames = batch["frames"]
    device = frozen.device
    embeddings, image_latents = [], []
    for sample_frames in frames:
        reference = conditioning.round_trip_image(sample_frames[0].numpy(), frozen.dtype)
        embeddings.append(conditioning.encode_image(frozen, reference).float())  # (1, 1, D)
        image_latents.append(
            conditioning.encode_vae_image(frozen, reference, noise_aug_strength, generator).float()
        )  # (1, 4, h, w)
    pixels = frames.permute(0, 1, 4, 2, 3).flatten(0, 1).float() / 127.5 - 1  # (B*F, 3, H, W)
    chunks = []
    for start in range(0, len(pixels), _VAE_CHUNK_FRAMES):
        chunk = pixels[start : start + _VAE_CHUNK_FRAMES].to(device, frozen.dtype)
        chunks.append(frozen.vae.encode(chunk).latent_dist.sample(generator=generator).float())
    latents = torch.cat(chunks).unflatten(0, frames.shape[:2]) * frozen.vae.config["scaling_factor"]
    # The pose pixels exactly as conditioning.encode_poses forms them at inference: u8 / 127.5 - 1.
    pose_pixels = batch["pose_frames"].permute(0, 1, 4, 2, 3).float() / 127.5 - 1  # (B, F, 3, H, W)
    return EncodedBatch(
        latents=latents,
        image_embeddings=torch.cat(embeddings),
        image_latents=torch.cat(image_latents),
        pose_pixels=pose_pixels.to(device),
        loss_weights=batch["loss_weights"].float().to(device),
    )


def forward_loss(
    model: nn.Module,
    models: MimicMotionModels,
    encoded: EncodedBatch,
    generator: torch.Generator,
    *,
    cond_drop_prob: float,
    noise_aug_strength: float,
    p_mean: float,
    p_std: float,
    autocast_dtype: torch.dtype | None,
) -> ForwardOutputs:
    """Dropout, noising, the UNet and the hand-weighted v-loss for one encoded batch.

    ``model`` is a ``TrainableModel`` (or DDP around one); ``models`` gives configs and the device.
    Random draws, in order, all from ``generator`` (CPU): dropout, sigma, noise.
    """
    latents = encoded.latents
    batch_size, num_frames = latents.shape[:2]
    device = latents.device
    # 1. Conditioning dropout: CLIP, reference latent and pose together, the inference uncond branch.
    keep = (torch.rand(batch_size, generator=generator) >= cond_drop_prob).float().to(device)  # (B,)
    image_embeddings = encoded.image_embeddings * keep.view(-1, 1, 1)
    image_latents = encoded.image_latents * keep.view(-1, 1, 1, 1)
    # 2. EDM noising: ln sigma ~ N(p_mean, p_std^2), x_sigma = x0 + sigma * eps.
    sigmas = edm.sample_sigmas(batch_size, generator, p_mean, p_std).to(device)  # (B,)
    noise = torch.randn(latents.shape, generator=generator, dtype=torch.float32).to(device)
    sigma = sigmas.view(-1, 1, 1, 1, 1)
    coefficients = edm.preconditioning(sigmas)
    noisy = (latents + sigma * noise) * coefficients.c_in.view(-1, 1, 1, 1, 1)
    # 3. UNet input: [c_in * x_sigma, reference latent] per frame, as the pipeline concatenates them.
    sample = torch.cat([noisy, image_latents[:, None].expand(-1, num_frames, -1, -1, -1)], dim=2)  # (B, F, 8, h, w)
    added_time_ids = conditioning.added_time_ids(models, noise_aug_strength).float().expand(batch_size, -1)
    with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
        model_output = model(sample, coefficients.c_noise, image_embeddings, added_time_ids, encoded.pose_pixels, keep)
    # 4. Loss in float32: mean of W * (F - v)^2, the EDM-weighted loss with hand weights.
    target = edm.v_target(latents, noise, sigma)
    loss = edm.v_loss(model_output, target, encoded.loss_weights[:, :, None])
    return ForwardOutputs(
        loss=loss, model_output=model_output, latents=latents, noise=noise, sigmas=sigmas,
        loss_weights=encoded.loss_weights, keep=keep,
    )  # fmt: skip
