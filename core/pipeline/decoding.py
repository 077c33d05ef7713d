"""Chunked VAE decode, several chunks per decoder call (reference §4.1 steps 13-14).

The SVD temporal decoder mixes frames only within a chunk of ``num_frames`` (its 3x1x1 time
convolutions, temporal GroupNorms and AlphaBlenders), so ``decode_chunk_size`` is part of the output.
It reshapes its (k * n) input frames into (k, n) before every temporal op (diffusers 0.42.1:
``TemporalDecoder.forward``, ``SpatioTemporalResBlock.forward``), and every spatial op (convolutions,
GroupNorm, the mid block's attention) works per frame; so k whole chunks in one call, with
``num_frames=n``, are k independent chunks in a batch. The shorter last chunk keeps its own call with
its own ``num_frames``, as the original decodes it. Float32 output is the same maths; only kernels that
pick another algorithm for another batch size round differently (on CPU the 3x1x1 time Conv3d, ~1e-6
after the decoder), which rarely flips a truncated uint8 value by one (tests/integration/test_decoding.py).
Shapes: N' frames, n = decode_chunk_size, k chunks per call, H, W pixels, h, w latent.
"""

import numpy as np
import torch
from diffusers.models.autoencoders.autoencoder_kl_temporal_decoder import AutoencoderKLTemporalDecoder

from core.pipeline.memory import available_memory_bytes, items_that_fit

# Peak activation memory of the SVD-xt VAE decoder (block_out_channels 128, 256, 512, 512, 2 layers per
# block), in elements per output pixel per frame; bytes are this times the dtype size. Measured on CPU in
# float32 with the real config (random weights): a dispatch mode that counted the live tensor storages
# of one decode call, output to uint8 included, peaked at 1040-1150 elements per pixel-frame for 2-4
# frames at 64x64 to 128x128 pixels (the constant part shrinks as frames and pixels grow); the peak op was
# a residual add, at full resolution in the last up blocks. At 576x1024 in 16 bits that is 1.1 GiB per
# frame, in line with the original's README (the VAE decode of its 16-frame model "demands 16GB").
# The mid block's attention (one 512-wide head) runs on the memory-efficient SDPA kernel on CUDA, which
# has no head-size limit, so no (h*w)^2 score matrix is held. Rounded up for kernel workspaces.
_DECODE_ELEMENTS_PER_PIXEL = 1200


def decode_latents(
    vae: AutoencoderKLTemporalDecoder, latents: torch.Tensor, decode_chunk_size: int, chunks_per_call: int
) -> np.ndarray:
    """(1, N', 4, h, w) latents -> (N', H, W, 3) uint8, ``chunks_per_call`` whole chunks per decoder call.

    Each call's frames leave the device as uint8, so a long video never holds float frames there.
    """
    latents = latents.flatten(0, 1).to(vae.device, vae.dtype)  # (N', 4, h, w), where the VAE lives
    latents = 1 / vae.config["scaling_factor"] * latents
    num_frames = len(latents)
    whole_end = num_frames - num_frames % decode_chunk_size  # the whole chunks end here
    frames_per_call = decode_chunk_size * chunks_per_call
    frames = [
        _decode_call(vae, latents[start : min(start + frames_per_call, whole_end)], decode_chunk_size)
        for start in range(0, whole_end, frames_per_call)
    ]
    if whole_end < num_frames:  # the shorter last chunk, on its own, as the original
        frames.append(_decode_call(vae, latents[whole_end:], num_frames - whole_end))
    return torch.cat(frames).permute(0, 2, 3, 1).numpy()  # (N', 3, H, W) -> (N', H, W, 3)


def _decode_call(vae: AutoencoderKLTemporalDecoder, latents: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(k * num_frames, 4, h, w) -> (k * num_frames, 3, H, W) uint8 on the CPU; k chunks of num_frames."""
    pixels = vae.decode(latents, num_frames=num_frames).sample.float()
    pixels = (pixels / 2 + 0.5).clamp(0, 1)
    # * 255 then truncation toward zero, as the original's .to(uint8) (reference §4.1 step 14).
    return (pixels * 255).to(torch.uint8).cpu()


def auto_chunks_per_call(
    vae: AutoencoderKLTemporalDecoder, num_frames: int, latent_size: tuple[int, int], decode_chunk_size: int
) -> int:
    """Chunks per decoder call: 1 on CPU (today's, no gain there); on CUDA as many as memory allows.

    The CUDA figure is an estimate from the SVD-xt decoder's activation size; pass
    ``decode_chunks_per_call`` to the pipeline to override it.
    """
    if vae.device.type != "cuda":
        return 1
    scale_factor = 2 ** (len(vae.config["block_out_channels"]) - 1)
    frame_size = (latent_size[0] * scale_factor, latent_size[1] * scale_factor)
    return chunks_per_call_for_memory(
        available_memory_bytes(vae.device), num_frames // decode_chunk_size, decode_chunk_size,
        frame_size, vae.dtype.itemsize,
    )  # fmt: skip


def chunks_per_call_for_memory(
    available_bytes: int, num_whole_chunks: int, decode_chunk_size: int, frame_size: tuple[int, int], dtype_bytes: int
) -> int:
    """Whole chunks whose decode activations fit the headroom share of ``available_bytes``: 1 to num_whole_chunks."""
    per_chunk = decode_chunk_size * frame_size[0] * frame_size[1] * _DECODE_ELEMENTS_PER_PIXEL * dtype_bytes
    return items_that_fit(available_bytes, per_chunk, num_whole_chunks)
