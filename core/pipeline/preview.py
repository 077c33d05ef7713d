"""Live previews: the denoised estimate of a few frames turned into RGB without the VAE.

A fixed linear map from the 4 latent channels to RGB, the approximation ComfyUI's latent previewer uses for
the Stable Diffusion 1.x latent space (``comfy/latent_formats.py``, ``SD15.latent_rgb_factors``), which
SVD's VAE shares (the same kl-f8 autoencoder with scaling factor 0.18215). It is applied to the latents as
the UNet sees them (scaled), and ``(rgb + 1) / 2`` maps the result to [0, 1]. A few hundred multiply-adds
per latent pixel of the frames shown: nothing next to a UNet step, and nothing in the loop changes.
"""

import numpy as np
import torch

#   R        G        B     (one row per latent channel)
LATENT_RGB_FACTORS = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)


def preview_frame_indices(num_latent_frames: int, max_frames: int) -> list[int]:
    """Up to ``max_frames`` evenly spaced frames, the reference (frame 0) left out when there are others."""
    first = 1 if num_latent_frames > 1 else 0
    count = min(max_frames, num_latent_frames - first)
    if count <= 1:
        return [first]
    return [first + round(i * (num_latent_frames - 1 - first) / (count - 1)) for i in range(count)]


@torch.no_grad()
def latents_to_rgb(estimate: torch.Tensor, *, max_frames: int = 4, upscale: int = 2) -> np.ndarray:
    """(1, N', 4, h, w) latents -> (F, h * upscale, w * upscale, 3) uint8 RGB of up to ``max_frames`` frames."""
    if estimate.ndim != 5 or estimate.shape[2] != len(LATENT_RGB_FACTORS):
        raise ValueError(f"expected (1, N', 4, h, w) latents, got {tuple(estimate.shape)}")
    picked = estimate[0, preview_frame_indices(estimate.shape[1], max_frames)]  # (F, 4, h, w)
    factors = torch.tensor(LATENT_RGB_FACTORS, dtype=torch.float32, device=picked.device)
    rgb = torch.einsum("fchw,cr->fhwr", picked.float(), factors)  # (F, h, w, 3)
    rgb = ((rgb + 1.0) / 2.0).clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    if upscale > 1:  # nearest: a latent pixel is an 8x8 patch of the video; a preview shows it as a block
        rgb = rgb.repeat_interleave(upscale, dim=1).repeat_interleave(upscale, dim=2)
    return rgb.cpu().numpy()
