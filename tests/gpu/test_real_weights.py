"""Smoke run on real weights (MIMICMOTION_MODEL_DIR) on CUDA: a few frames, two steps, no NaN, the right shape."""

from pathlib import Path

import numpy as np
import pytest
import torch

from core.models.files import TINY_MARKER_FILE, resolve_model_files
from core.models.loading import load_models
from core.pipeline.pipeline import MimicMotionPipeline
from core.settings import Settings
from tests.support.gpu import CUDA_ONLY

pytestmark = CUDA_ONLY

# Multiples of 64, so every UNet level divides; small, so a run takes seconds once the weights are loaded.
HEIGHT, WIDTH = 576, 320
NUM_FRAMES = 4


@pytest.fixture(scope="module")
def model_dir() -> Path:
    model_dir = Settings().model_dir
    if model_dir is None:
        pytest.skip("needs real weights: set MIMICMOTION_MODEL_DIR to a model directory (README, Model directory)")
    if (model_dir / TINY_MARKER_FILE).exists():
        pytest.skip(f"MIMICMOTION_MODEL_DIR={model_dir} is a tiny random model, not real weights")
    return model_dir


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_real_weights_animate_a_few_frames_without_nan(model_dir: Path, dtype: torch.dtype) -> None:
    # bfloat16 is the CUDA default; float16 is what the original ran, where an overflow would show as NaN.
    pipeline = MimicMotionPipeline(load_models(resolve_model_files(model_dir), "cuda", dtype))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    pose_frames = np.zeros((NUM_FRAMES + 1, HEIGHT, WIDTH, 3), dtype=np.uint8)
    pose_frames[:, HEIGHT // 4 : HEIGHT // 2, WIDTH // 3 : WIDTH // 2] = 255  # a drawn limb-sized box
    state = pipeline.prepare_denoising(
        image, pose_frames, seed=1, num_inference_steps=2, guidance_scale=2.0, noise_aug_strength=0.0,
        tile_size=16, tile_overlap=4, sigma_schedule="karras", tiles_per_call=None,
    )  # fmt: skip
    latents = pipeline.denoise(state, on_step=None)
    assert bool(torch.isfinite(latents).all()), f"{dtype} latents hold NaN or inf"
    frames = pipeline.decode(latents, decode_chunk_size=8, decode_chunks_per_call=None)
    assert frames.shape == (NUM_FRAMES, HEIGHT, WIDTH, 3) and frames.dtype == np.uint8
    assert frames.std() > 1.0  # not one flat colour, as NaN decoded to uint8 would give
