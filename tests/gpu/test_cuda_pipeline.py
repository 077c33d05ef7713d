"""The tiny pipeline on CUDA: float32 against the CPU, 16-bit and a compiled UNet against float32, dtypes per run.

The tiny model keeps these to seconds; what they check (kernels, dtypes, inductor) does not need real weights.
Tiles per call and chunks per call are left to the pipeline's CUDA planning, the path a worker takes.
"""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from core.models.files import ModelFiles, resolve_model_files
from core.models.loading import load_models
from core.pipeline.performance import PerformanceOptions
from core.pipeline.pipeline import MimicMotionPipeline
from tests.support.dtype_flow import EXPECTED, FRAME_TOLERANCE, UNET_CONDITIONING, recording_dtypes
from tests.support.gpu import CUDA_ONLY, frame_difference

pytestmark = CUDA_ONLY

HEIGHT, WIDTH = 96, 64
# 16 frames in tiles of 8, overlap 3: three tiles, batched into UNet calls as CUDA memory allows.
DENOISING: dict[str, Any] = {
    "seed": 2, "num_inference_steps": 3, "guidance_scale": 2.0, "noise_aug_strength": 0.02, "tile_size": 8,
    "tile_overlap": 3, "sigma_schedule": "karras", "tiles_per_call": None,
}  # fmt: skip
CALL: dict[str, Any] = {**DENOISING, "decode_chunk_size": 8, "decode_chunks_per_call": None, "on_step": None}
# Float32 on CUDA with TF32 off against the CPU: the same maths summed in another order (about 1e-6
# relative), so at most a truncation flip of one uint8 level on a few values; fp16's 1e-3 flips ~20 %.
CPU_TOLERANCE = {"max": 1, "changed": 0.01}


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    return image, rng.integers(0, 256, (16, HEIGHT, WIDTH, 3), dtype=np.uint8)


def _frames(files: ModelFiles, device: str, dtype: torch.dtype, options: PerformanceOptions) -> np.ndarray:
    # Built right before its run: PerformanceOptions.tf32 is a process-wide switch set at construction.
    pipeline = MimicMotionPipeline(load_models(files, device, dtype), options)
    image, pose_frames = _inputs()
    return pipeline(image, pose_frames, **CALL).frames


@pytest.fixture(scope="module")
def files(tiny_model_dir: Path) -> ModelFiles:
    return resolve_model_files(tiny_model_dir)


@pytest.fixture(scope="module")
def float32_frames(files: ModelFiles) -> np.ndarray:
    return _frames(files, "cuda", torch.float32, PerformanceOptions(tf32=False))


def test_cuda_float32_frames_equal_the_cpu_frames_up_to_rounding(files: ModelFiles, float32_frames: np.ndarray) -> None:
    # The seed draws on the CPU generator on every device, so CUDA starts from the CPU run's noise.
    cpu_frames = _frames(files, "cpu", torch.float32, PerformanceOptions())
    difference = frame_difference(float32_frames, cpu_frames)
    assert difference["max"] <= CPU_TOLERANCE["max"]
    assert difference["changed"] < CPU_TOLERANCE["changed"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_cuda_16bit_frames_stay_close_to_float32(
    files: ModelFiles, float32_frames: np.ndarray, dtype: torch.dtype
) -> None:
    difference = frame_difference(_frames(files, "cuda", dtype, PerformanceOptions()), float32_frames)
    assert difference["mean"] < FRAME_TOLERANCE[dtype]["mean"]
    assert difference["max"] <= FRAME_TOLERANCE[dtype]["max"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_cuda_dtypes_follow_the_run_dtype(files: ModelFiles, dtype: torch.dtype) -> None:
    # The CPU tests' table (tests/integration/test_pipeline_dtypes.py), here with CUDA's batched tiles.
    pipeline = MimicMotionPipeline(load_models(files, "cuda", dtype))
    image, pose_frames = _inputs()
    state = pipeline.prepare_denoising(image, pose_frames, **DENOISING)
    expected = EXPECTED[dtype]
    assert (state.latents.dtype, state.fusion_weights.dtype, state.guidance.dtype) == (expected.latents,) * 3
    with recording_dtypes(pipeline.models.unet, state) as flow:
        latents = pipeline.denoise(state, on_step=None)
    assert latents.dtype == expected.latents and bool(torch.isfinite(latents).all())
    assert {device.type for device in flow.unet_devices} == {"cuda"}
    dtypes = flow.unet_dtypes()
    assert {name: dtypes[name] for name in ("sample", *UNET_CONDITIONING)} == {
        name: {expected.model} for name in ("sample", *UNET_CONDITIONING)
    }
    assert dtypes["timestep"] == {expected.timestep}
    assert flow.step_dtypes() == {"model_output": {expected.latents}, "sample": {expected.latents}}


def test_compiled_unet_frames_stay_close_to_float32_and_to_eager(files: ModelFiles, float32_frames: np.ndarray) -> None:
    # bfloat16, the CUDA default, compiled as a worker with MIMICMOTION_COMPILE_UNET runs it. Inductor
    # fuses pointwise ops and rounds to bfloat16 once per fused kernel instead of once per op, so it
    # differs from eager by bfloat16 rounding, not more: both bounds are the bfloat16 ones.
    from torch._dynamo.utils import counters  # dynamo loads on first use, not with torch

    graphs_before = counters["stats"]["unique_graphs"]
    compiled = _frames(files, "cuda", torch.bfloat16, PerformanceOptions(compile_unet=True))
    graphs = counters["stats"]["unique_graphs"] - graphs_before
    assert graphs >= 5, f"{graphs} graphs compiled: the tiny UNet's 2 down, 1 mid and 2 up blocks each compile"
    eager = _frames(files, "cuda", torch.bfloat16, PerformanceOptions())
    for reference in (float32_frames, eager):
        difference = frame_difference(compiled, reference)
        assert difference["mean"] < FRAME_TOLERANCE[torch.bfloat16]["mean"]
        assert difference["max"] <= FRAME_TOLERANCE[torch.bfloat16]["max"]
