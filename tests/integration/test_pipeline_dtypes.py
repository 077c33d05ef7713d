"""The 16-bit pipeline on CPU with the tiny model: which dtype flows where, and how close the frames stay to float32.

torch 2.13 runs every op of the tiny pipeline on CPU in float16 and in bfloat16 (convolutions, GroupNorm,
SDPA, the VAE and CLIP), so both paths run here. Expected dtypes: tests/support/dtype_flow.py (EXPECTED).
"""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from core.models.files import resolve_model_files
from core.models.loading import MimicMotionModels, load_models
from core.pipeline.pipeline import MimicMotionPipeline
from tests.support.dtype_flow import EXPECTED, FRAME_TOLERANCE, UNET_CONDITIONING, DtypeFlow, recording_dtypes

HEIGHT, WIDTH = 48, 32
# 16 frames in tiles of 8, overlap 3: three tiles, so fusion sums overlapping predictions.
DENOISING: dict[str, Any] = {
    "num_inference_steps": 3, "guidance_scale": 2.0, "noise_aug_strength": 0.02, "tile_size": 8,
    "tile_overlap": 3, "sigma_schedule": "karras", "tiles_per_call": 1,
}  # fmt: skip
CALL: dict[str, Any] = {**DENOISING, "decode_chunk_size": 8, "decode_chunks_per_call": 1, "on_step": None}
DTYPES = [torch.float16, torch.bfloat16, torch.float32]


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    return image, rng.integers(0, 256, (16, HEIGHT, WIDTH, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def models(tiny_model_dir: Path) -> dict[torch.dtype, MimicMotionModels]:
    files = resolve_model_files(tiny_model_dir)
    return {dtype: load_models(files, "cpu", dtype) for dtype in DTYPES}


@pytest.fixture(scope="module")
def runs(models: dict[torch.dtype, MimicMotionModels]) -> dict[torch.dtype, dict[str, Any]]:
    """Per run dtype, one recorded prepare_denoising + denoise: the state, the final latents, the dtype flow."""
    image, pose_frames = _inputs()
    recorded = {}
    for dtype, loaded in models.items():
        pipeline = MimicMotionPipeline(loaded)
        state = pipeline.prepare_denoising(image, pose_frames, seed=1, **DENOISING)
        initial = {"latents": state.latents.dtype, "fusion_weights": state.fusion_weights.dtype,
                   "guidance": state.guidance.dtype}  # fmt: skip
        with recording_dtypes(loaded.unet, state) as flow:
            latents = pipeline.denoise(state, on_step=None)
        recorded[dtype] = {"initial": initial, "latents": latents, "flow": flow}
    return recorded


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_latents_fusion_and_guidance_are_in_the_latents_dtype(
    runs: dict[torch.dtype, dict[str, Any]], dtype: torch.dtype
) -> None:
    expected = EXPECTED[dtype].latents
    run = runs[dtype]
    assert run["initial"] == {"latents": expected, "fusion_weights": expected, "guidance": expected}
    assert run["latents"].dtype == expected


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_scheduler_steps_fused_noise_and_latents_in_the_latents_dtype(
    runs: dict[torch.dtype, dict[str, Any]], dtype: torch.dtype
) -> None:
    # The fused, guided prediction carries the fusion weights' and guidance's dtype; Euler returns its
    # sample in the prediction's dtype, so that is also the next step's latents (reference §4.1 step 12.8).
    flow: DtypeFlow = runs[dtype]["flow"]
    expected = EXPECTED[dtype].latents
    assert len(flow.steps) == DENOISING["num_inference_steps"]
    assert flow.step_dtypes() == {"model_output": {expected}, "sample": {expected}}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_unet_gets_sample_and_conditioning_in_the_model_dtype(
    runs: dict[torch.dtype, dict[str, Any]], dtype: torch.dtype
) -> None:
    flow: DtypeFlow = runs[dtype]["flow"]
    dtypes = flow.unet_dtypes()
    assert len(flow.unet_calls) == 3 * DENOISING["num_inference_steps"]  # three tiles, one call each
    assert {name: dtypes[name] for name in ("sample", *UNET_CONDITIONING)} == {
        name: {EXPECTED[dtype].model} for name in ("sample", *UNET_CONDITIONING)
    }


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_unet_timestep_dtype_follows_the_run_dtype(runs: dict[torch.dtype, dict[str, Any]], dtype: torch.dtype) -> None:
    # float16: the original's fp16 timesteps; bfloat16: float32, which t_emb casts to the model dtype itself.
    assert runs[dtype]["flow"].unet_dtypes()["timestep"] == {EXPECTED[dtype].timestep}


@pytest.fixture(scope="module")
def float32_frames(models: dict[torch.dtype, MimicMotionModels]) -> np.ndarray:
    image, pose_frames = _inputs()
    return MimicMotionPipeline(models[torch.float32])(image, pose_frames, seed=2, **CALL).frames


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_16bit_frames_stay_close_to_float32(
    models: dict[torch.dtype, MimicMotionModels], float32_frames: np.ndarray, dtype: torch.dtype
) -> None:
    image, pose_frames = _inputs()
    frames = MimicMotionPipeline(models[dtype])(image, pose_frames, seed=2, **CALL).frames
    assert frames.shape == float32_frames.shape and frames.dtype == np.uint8
    difference = np.abs(frames.astype(int) - float32_frames.astype(int))
    assert difference.mean() < FRAME_TOLERANCE[dtype]["mean"]
    assert difference.max() <= FRAME_TOLERANCE[dtype]["max"]
