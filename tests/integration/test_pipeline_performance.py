"""PerformanceOptions and sigma schedules on the tiny model, CPU: each option against the default path."""

import itertools
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from core.animate import Animator, warm_up
from core.contract.params import JobParams
from core.models.files import resolve_model_files
from core.models.loading import load_models
from core.models.tiny import UNET_CONFIG
from core.models.unet import PoseConditionedUNet
from core.pipeline.performance import GRAPHS_PER_BLOCK, PerformanceOptions, compile_blocks
from core.pipeline.pipeline import MimicMotionPipeline
from core.pipeline.sigmas import ALIGN_YOUR_STEPS_SVD, align_your_steps_sigmas
from tests.support.pipeline_args import pipeline_args

HEIGHT, WIDTH = 48, 32
# 16 frames in tiles of 8, overlap 3: three tiles, so two devices get unequal shares.
SETTINGS = pipeline_args(num_inference_steps=3, noise_aug_strength=0.02, tile_size=8, tile_overlap=3, seed=3)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    return image, rng.integers(0, 256, (16, HEIGHT, WIDTH, 3), dtype=np.uint8)


def _pipeline(
    model_dir: Path, options: PerformanceOptions | None = None, dtype: torch.dtype = torch.float32
) -> MimicMotionPipeline:
    # Fresh models per pipeline: options change the modules in place.
    return MimicMotionPipeline(load_models(resolve_model_files(model_dir), "cpu", dtype), options)


@pytest.fixture(scope="module")
def default_frames(tiny_model_dir: Path) -> np.ndarray:
    image, pose_frames = _inputs()
    return _pipeline(tiny_model_dir)(image, pose_frames, **SETTINGS).frames


def test_tile_devices_give_the_single_device_frames_exactly(tiny_model_dir: Path, default_frames: np.ndarray) -> None:
    # Two extra "devices" (UNet copies in threads): three tile groups dealt round-robin over three
    # UNets, fused in the original order, so every float sum is the single-device one.
    image, pose_frames = _inputs()
    pipeline = _pipeline(tiny_model_dir, PerformanceOptions(tile_devices=("cpu", "cpu")))
    assert len(pipeline.helper_unets) == 2 and pipeline.helper_unets[0] is not pipeline.models.unet
    frames = pipeline(image, pose_frames, **SETTINGS).frames
    assert np.array_equal(frames, default_frames)


def test_tile_device_threads_run_the_unets_without_grad(tiny_model_dir: Path) -> None:
    # Grad mode is per thread and the tile-device pool's threads start with it on; the pipeline's
    # no_grad must hold there too, or each UNet call would keep its activations for a backward pass.
    image, pose_frames = _inputs()
    pipeline = _pipeline(tiny_model_dir, PerformanceOptions(tile_devices=("cpu",)))
    grad_enabled: list[bool] = []
    for unet in (pipeline.models.unet, *pipeline.helper_unets):
        unet.register_forward_pre_hook(lambda module, args: grad_enabled.append(torch.is_grad_enabled()))
    pipeline(image, pose_frames, **{**SETTINGS, "num_inference_steps": 1})
    assert len(grad_enabled) == 3 and not any(grad_enabled)  # three tiles, one UNet call each


@pytest.mark.parametrize(
    "options",
    [PerformanceOptions(cfg_mode="sequential"), PerformanceOptions(channels_last=True)],
    ids=["sequential_cfg", "channels_last"],
)
def test_option_keeps_the_default_frames(
    tiny_model_dir: Path, default_frames: np.ndarray, options: PerformanceOptions
) -> None:
    # Other batch sizes and layouts may pick other CPU kernels: the float rounding, not the maths, may differ.
    image, pose_frames = _inputs()
    frames = _pipeline(tiny_model_dir, options)(image, pose_frames, **SETTINGS).frames
    difference = np.abs(frames.astype(int) - default_frames.astype(int))
    assert difference.max() <= 1
    assert (difference > 0).mean() < 0.005


def test_cpu_vae_runs_in_float32_beside_a_bfloat16_model(tiny_model_dir: Path, default_frames: np.ndarray) -> None:
    image, pose_frames = _inputs()
    pipeline = _pipeline(tiny_model_dir, PerformanceOptions(vae_device="cpu"), dtype=torch.bfloat16)
    assert pipeline.models.vae.dtype == torch.float32 and pipeline.models.unet.dtype == torch.bfloat16
    frames = pipeline(image, pose_frames, **SETTINGS).frames
    assert frames.shape == default_frames.shape
    assert np.abs(frames.astype(int) - default_frames.astype(int)).mean() < 4.0  # bfloat16 UNet, float32 VAE


def test_compile_unet_compiles_the_blocks_not_the_hooked_unet(tiny_model_dir: Path) -> None:
    # Wiring only: compiling even the tiny UNet takes minutes on two CPU cores. The GPU run is in
    # bench/pipeline.py --compile; the pose hook on conv_in would make the whole UNet recompile per call.
    pipeline = _pipeline(tiny_model_dir, PerformanceOptions(compile_unet=True))
    unet = pipeline.models.unet
    blocks = [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
    assert all(block._compiled_call_impl is not None for block in blocks)
    assert unet._compiled_call_impl is None


def test_compile_blocks_gives_blocks_sharing_a_forward_room_for_their_graphs() -> None:
    # Three blocks of one class share one code object, whose graphs dynamo caps at recompile_limit
    # (8) before running it eagerly: three shapes of SVD's three cross-attention down blocks are 9.
    config = {
        **UNET_CONFIG,
        "down_block_types": ["CrossAttnDownBlockSpatioTemporal"] * 3,
        "up_block_types": ["CrossAttnUpBlockSpatioTemporal"] * 3,
        "block_out_channels": [32, 64, 64],
        "num_attention_heads": [2, 4, 4],
    }
    with torch.device("meta"):  # the blocks' code, not their weights
        unets = [PoseConditionedUNet.from_config(config) for _ in range(2)]  # a UNet and a replica
    with torch._dynamo.config.patch(recompile_limit=8, accumulated_recompile_limit=256):
        for unet in unets:
            compile_blocks(unet, None)
        assert torch._dynamo.config.recompile_limit >= len(unets) * 3 * GRAPHS_PER_BLOCK
        assert torch._dynamo.config.accumulated_recompile_limit >= torch._dynamo.config.recompile_limit


def test_align_your_steps_sigmas_are_the_tuned_ones_at_ten_steps() -> None:
    sigmas = align_your_steps_sigmas(10)
    np.testing.assert_allclose(sigmas[:-1], ALIGN_YOUR_STEPS_SVD[:-1], rtol=1e-9)
    assert sigmas[-1] == 0.0


@pytest.mark.parametrize("num_inference_steps", [1, 4, 25])
def test_align_your_steps_sigmas_fall_from_700_to_zero(num_inference_steps: int) -> None:
    sigmas = align_your_steps_sigmas(num_inference_steps)
    assert len(sigmas) == num_inference_steps + 1
    assert sigmas[0] == pytest.approx(700.0) and sigmas[-1] == 0.0
    assert all(later < earlier for earlier, later in itertools.pairwise(sigmas))


def test_align_your_steps_schedule_drives_the_scheduler(tiny_model_dir: Path, default_frames: np.ndarray) -> None:
    pipeline = _pipeline(tiny_model_dir)
    scheduler = pipeline._scheduler(4, "align_your_steps")
    np.testing.assert_allclose(scheduler.sigmas.numpy(), align_your_steps_sigmas(4), rtol=1e-6)
    # SVD's continuous timesteps: 0.25 log(sigma), as diffusers' EDM scaling wants (reference §4.1 step 6).
    np.testing.assert_allclose(scheduler.timesteps.numpy(), 0.25 * np.log(align_your_steps_sigmas(4)[:-1]), rtol=1e-5)
    image, pose_frames = _inputs()
    steps: list[int] = []
    settings = {**SETTINGS, "num_inference_steps": 4, "sigma_schedule": "align_your_steps"}
    frames = pipeline(image, pose_frames, on_step=lambda s, _: steps.append(s), **settings).frames
    assert steps == [1, 2, 3, 4]
    assert np.abs(frames.astype(int) - default_frames.astype(int)).mean() > 0.5  # another schedule, other frames
    assert JobParams().sigma_schedule == SETTINGS["sigma_schedule"] == "karras"  # the default is the original's
    again = pipeline(image, pose_frames, **SETTINGS).frames
    assert np.array_equal(again, default_frames)  # the schedule is per call: nothing of it stays in the pipeline


class _HostTransfers(TorchDispatchMode):
    """Records, per call site, the ops that move data between host and device on CUDA.

    ``aten.lift_fresh`` makes a tensor from Python data (a list index, ``torch.tensor(...)``): on CUDA
    a host-to-device copy with a stream sync. ``aten._local_scalar_dense`` reads a value back to the
    host (``.item()``, ``bool(t)``): a sync when the tensor is on the device. On CPU both still show.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sites: set[tuple[str, str]] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func in (torch.ops.aten.lift_fresh.default, torch.ops.aten._local_scalar_dense.default):
            caller = next(
                frame for frame in reversed(traceback.extract_stack()[:-1])
                if "/core/" in frame.filename or "/diffusers/" in frame.filename
            )  # fmt: skip
            self.sites.add((func.__name__, f"{Path(caller.filename).name}:{caller.line}"))
        return func(*args, **(kwargs or {}))


def test_the_step_loop_makes_no_host_device_copies(tiny_model_dir: Path) -> None:
    image, pose_frames = _inputs()
    transfers = _HostTransfers()

    def on_step(step: int, total_steps: int) -> None:  # records steps 2..N whole: the loop body
        if step == 1:
            transfers.__enter__()
        elif step == total_steps:
            transfers.__exit__(None, None, None)

    _pipeline(tiny_model_dir)(image, pose_frames, on_step=on_step, **SETTINGS)

    # The one host read left is diffusers' Euler step comparing a sigma, which it keeps on the CPU on
    # purpose; it never waits for the GPU.
    assert {site for site in transfers.sites if "scheduling_euler_discrete" not in site[1]} == set()
    assert transfers.sites, "nothing recorded: the loop ran outside the recorder"


def test_warm_up_runs_every_tile_group_size_a_job_can_use(animator: Animator) -> None:
    params = JobParams(resolution=128, tile_size=4, tile_overlap=1)
    batch_sizes: list[int] = []
    hook = animator.pipeline.models.unet.register_forward_pre_hook(
        lambda _module, args: batch_sizes.append(args[0].shape[0])
    )
    try:
        warm_up(animator, params, tiles_per_call=3)
        warm_up(animator, params)  # CPU: the pipeline's own choice is one tile per call
    finally:
        hook.remove()
    # Guidance doubles the rows: groups of 1, 2 and 3 tiles are the shapes a compiled UNet meets.
    assert batch_sizes == [2, 4, 6, 2]
