"""One job's tiles over two GPUs (PerformanceOptions.tile_devices): the second card runs its share, same frames."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from core.models.files import resolve_model_files
from core.models.loading import load_models
from core.pipeline.performance import PerformanceOptions
from core.pipeline.pipeline import MimicMotionPipeline
from tests.support.gpu import CUDA_ONLY, frame_difference

pytestmark = [
    *CUDA_ONLY,
    pytest.mark.skipif(
        torch.cuda.device_count() < 2, reason=f"needs two CUDA devices, this machine has {torch.cuda.device_count()}"
    ),
]

HEIGHT, WIDTH = 96, 64
# 16 frames in tiles of 8, overlap 3, one tile per call: groups 0 and 2 on cuda:0, group 1 on cuda:1.
CALL: dict[str, Any] = {
    "seed": 3, "num_inference_steps": 3, "guidance_scale": 2.0, "noise_aug_strength": 0.02, "tile_size": 8,
    "tile_overlap": 3, "sigma_schedule": "karras", "tiles_per_call": 1, "decode_chunk_size": 8,
    "decode_chunks_per_call": 1, "on_step": None,
}  # fmt: skip


def test_tile_devices_on_a_second_gpu_give_the_one_gpu_frames(tiny_model_dir: Path) -> None:
    # Float32 with TF32 off. Fusion runs on cuda:0 in the original order, as on one card; only cuDNN's
    # autotuning may pick another convolution algorithm on the other card, a float rounding difference.
    files = resolve_model_files(tiny_model_dir)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    pose_frames = rng.integers(0, 256, (16, HEIGHT, WIDTH, 3), dtype=np.uint8)
    one_card = MimicMotionPipeline(load_models(files, "cuda:0", torch.float32), PerformanceOptions(tf32=False))
    single = one_card(image, pose_frames, **CALL).frames
    options = PerformanceOptions(tf32=False, tile_devices=("cuda:1",))
    pipeline = MimicMotionPipeline(load_models(files, "cuda:0", torch.float32), options)
    devices: list[torch.device] = []
    pipeline.helper_unets[0].register_forward_pre_hook(lambda _module, args: devices.append(args[0].device))
    frames = pipeline(image, pose_frames, **CALL).frames
    assert devices == [torch.device("cuda:1")] * CALL["num_inference_steps"]  # one group per step
    difference = frame_difference(frames, single)
    assert difference["max"] <= 1 and difference["changed"] < 0.01
