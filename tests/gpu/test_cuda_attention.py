"""Fused SDPA kernels at the temporal-attention batch the pipeline plans on CUDA, in bfloat16.

SVD's temporal attention runs one sequence of T frames per latent pixel: a batch of rows * k * h * w
sequences for k tiles per call. CUDA's flash and memory-efficient kernels have put that batch on a
launch-grid axis of at most 65535 (``_MAX_ATTENTION_BATCH`` in core/pipeline/denoising.py); the cap on
tiles per call must keep every call the pipeline plans within what these kernels run.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from core.models.files import resolve_model_files
from core.models.loading import load_models
from core.pipeline.denoising import _MAX_ATTENTION_BATCH, tiles_per_call_for_attention, tiles_per_call_for_memory
from core.pipeline.memory import available_memory_bytes
from core.pipeline.pipeline import MimicMotionPipeline
from tests.support.gpu import CUDA_ONLY

pytestmark = CUDA_ONLY

# 576 resolution, portrait 1024x576 pixels: a 128x72 latent, 9216 sequences per row and tile.
LATENT_SIZE = (128, 72)
# SVD-xt's first-level temporal attention: 72-frame tiles, 320 channels in 5 heads of 64.
TILE_FRAMES, HEADS, HEAD_DIM = 72, 5, 64
FUSED = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]


def _attention_against_math(batch: int, backend: SDPBackend) -> tuple[torch.Tensor, torch.Tensor]:
    """SDPA on ``backend`` at ``batch`` sequences, and the math kernel on three of them: (3, heads, T, d) each."""
    generator = torch.Generator("cuda").manual_seed(0)
    shape = (batch, HEADS, TILE_FRAMES, HEAD_DIM)
    query, key, value = (torch.randn(shape, generator=generator, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    with sdpa_kernel([backend]):
        output = F.scaled_dot_product_attention(query, key, value)
    torch.cuda.synchronize()  # a failed launch surfaces here at the latest
    picked = torch.tensor([0, batch // 2, batch - 1], device="cuda")  # both ends of the grid axis
    with sdpa_kernel([SDPBackend.MATH]):
        reference = F.scaled_dot_product_attention(query[picked], key[picked], value[picked])
    return output[picked], reference


@pytest.mark.parametrize("rows", [1, 2], ids=["cond_only", "guidance"])
@pytest.mark.parametrize("backend", FUSED, ids=lambda backend: backend.name)
def test_fused_attention_runs_at_the_largest_batch_the_cap_plans(rows: int, backend: SDPBackend) -> None:
    tiles = tiles_per_call_for_attention(LATENT_SIZE, rows)
    batch = rows * tiles * LATENT_SIZE[0] * LATENT_SIZE[1]  # guidance: 3 tiles, 55296; cond only: 7, 64512
    assert batch <= _MAX_ATTENTION_BATCH < rows * (tiles + 1) * LATENT_SIZE[0] * LATENT_SIZE[1]
    output, reference = _attention_against_math(batch, backend)
    torch.testing.assert_close(output, reference, atol=2e-2, rtol=2e-2)  # bfloat16 softmax and sums


@pytest.mark.parametrize("backend", FUSED, ids=lambda backend: backend.name)
def test_fused_attention_runs_at_the_cap_itself(backend: SDPBackend) -> None:
    output, reference = _attention_against_math(_MAX_ATTENTION_BATCH, backend)
    torch.testing.assert_close(output, reference, atol=2e-2, rtol=2e-2)


def test_tiny_pipeline_at_576_resolution_plans_calls_within_the_cap_and_runs(tiny_model_dir: Path) -> None:
    # The tiny UNet's first level is a spatio-temporal cross-attention block at the full latent size,
    # so its temporal attention meets the same rows * k * h * w batch as SVD-xt at this resolution.
    # An H200 at 576x1024 once planned 5 tiles per call (92160 sequences) and failed to launch.
    pipeline = MimicMotionPipeline(load_models(resolve_model_files(tiny_model_dir), "cuda", torch.bfloat16))
    height, width = LATENT_SIZE[0] * 8, LATENT_SIZE[1] * 8
    tile_size, tile_overlap, num_tiles = 8, 2, 5
    num_frames = tile_size + (num_tiles - 1) * (tile_size - tile_overlap)  # five regular tiles
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    pose_frames = rng.integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)
    fits_memory = tiles_per_call_for_memory(
        available_memory_bytes(torch.device("cuda")), num_tiles, tile_size, LATENT_SIZE, 2, 2
    )
    batches: list[int] = []
    hook = pipeline.models.unet.register_forward_pre_hook(lambda _module, args: batches.append(args[0].shape[0]))
    try:
        state = pipeline.prepare_denoising(
            image, pose_frames, seed=0, num_inference_steps=1, guidance_scale=2.0, noise_aug_strength=0.0,
            tile_size=tile_size, tile_overlap=tile_overlap, sigma_schedule="karras", tiles_per_call=None,
        )  # fmt: skip
        assert len(state.tile_frames) == num_tiles
        assert state.tiles_per_call == min(fits_memory, tiles_per_call_for_attention(LATENT_SIZE, rows=2))
        latents = pipeline.denoise(state, on_step=None)
        torch.cuda.synchronize()
    finally:
        hook.remove()
    assert bool(torch.isfinite(latents).all())
    assert max(batches) == 2 * state.tiles_per_call  # guidance rows * tiles in the largest call
    assert max(batches) * LATENT_SIZE[0] * LATENT_SIZE[1] <= _MAX_ATTENTION_BATCH
