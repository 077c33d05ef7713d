"""Time one denoising step in the original's schedule and in ours, on random-weight models.

The original runs, per tile, PoseNet on the tile's pose frames and two batch-1 UNet calls (uncond
without pose, then cond); ours runs PoseNet once per job and one UNet call for both branches and
``--tiles-per-call`` tiles. CPU default: the tiny model at a small size; CUDA default: the full
SVD-xt UNet at 576x1024 with random weights built on the device (same compute, no download).

    .venv/bin/python bench/pipeline.py                      # CPU, tiny model
    .venv/bin/python bench/pipeline.py --device cuda        # full SVD-xt UNet, 72-frame tiles
    .venv/bin/python bench/pipeline.py --device cuda --channels-last --compile   # with the speed options

The last line projects the original's 35-second demo (531 frames: 8 tiles of 72, 25 steps, CFG)
from the measured seconds per tile-step.
"""

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from core.models.loading import resolve_device, resolve_dtype
from core.models.pose_net import PoseNet
from core.models.tiny import UNET_CONFIG as TINY_UNET_CONFIG
from core.models.unet import PoseConditionedUNet
from core.pipeline.denoising import TileConditioning, apply_guidance, predict_fused_noise, tile_frame_indices
from core.pipeline.performance import compile_blocks, to_channels_last
from core.pipeline.tiling import fusion_weights, tile_indices

# svd/unet/config.json of stable-video-diffusion-img2vid-xt-1-1 (reference §2).
SVD_XT_UNET_CONFIG = {
    "sample_size": 96,
    "in_channels": 8,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlockSpatioTemporal"] * 3 + ["DownBlockSpatioTemporal"],
    "up_block_types": ["UpBlockSpatioTemporal"] + ["CrossAttnUpBlockSpatioTemporal"] * 3,
    "block_out_channels": [320, 640, 1280, 1280],
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 768,
    "layers_per_block": 2,
    "cross_attention_dim": 1024,
    "transformer_layers_per_block": 1,
    "num_attention_heads": [5, 10, 20, 20],
    "num_frames": 25,
}
DEMO_TILES, DEMO_STEPS = 8, 25  # the original's 35-second demo: 531 frames in tiles of 72, overlap 6
# Dense 16-bit tensor-core peaks (TFLOP/s), by device-name fragment; first match wins.
PEAK_TFLOPS_16BIT = (("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("A100", 312.0), ("L40S", 362.0))


@dataclass
class Workload:
    unet: PoseConditionedUNet
    pose_net: PoseNet
    latents: torch.Tensor  # (1, N', 4, h, w)
    pose_pixels: torch.Tensor  # (N', 3, H, W) in [-1, 1]
    conditioning: TileConditioning
    tiles: list[list[int]]  # the original indexes with these Python lists
    tile_frames: list[torch.Tensor]  # ours: the same indices on the device, made once per job
    weights: torch.Tensor  # (T,)
    guidance: torch.Tensor  # (1, N', 1, 1, 1)


def build_workload(model: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> Workload:
    """Random-weight models and inputs for ``args.tiles`` tiles of ``args.frames`` frames."""
    config = SVD_XT_UNET_CONFIG if model == "svd-xt" else TINY_UNET_CONFIG
    torch.manual_seed(0)
    with torch.device(device):
        unet = PoseConditionedUNet.from_config(config)
        pose_net = PoseNet(config["block_out_channels"][0])
    for module in (unet, pose_net):
        nn.Module.to(module, dtype=dtype)  # not ModelMixin.to, which warns about an empty fp32 list
        module.eval().requires_grad_(False)
    num_frames = args.frames + (args.tiles - 1) * (args.frames - args.overlap)
    tiles = tile_indices(num_frames, args.frames, args.overlap)
    h, w = args.height // 8, args.width // 8
    pose_pixels = torch.rand((num_frames, 3, args.height, args.width), device=device, dtype=dtype) * 2 - 1
    conditioning = TileConditioning(
        image_embeddings=torch.randn((1, 1, config["cross_attention_dim"]), device=device, dtype=dtype),
        image_latents=torch.randn((1, 4, h, w), device=device, dtype=dtype),
        added_time_ids=torch.tensor([[6.0, 127.0, 0.0]], device=device, dtype=dtype),
        pose_latents=_pose_latents(pose_net, pose_pixels),
        do_classifier_free_guidance=True,
    )
    return Workload(
        unet=unet,
        pose_net=pose_net,
        latents=torch.randn((1, num_frames, 4, h, w), device=device, dtype=dtype),
        pose_pixels=pose_pixels,
        conditioning=conditioning,
        tiles=tiles,
        tile_frames=tile_frame_indices(tiles, device),
        weights=fusion_weights(args.frames, dtype=dtype, device=device),
        guidance=torch.full((1, num_frames, 1, 1, 1), 2.0, device=device, dtype=dtype),
    )


def _pose_latents(pose_net: PoseNet, pose_pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([pose_net(chunk) for chunk in pose_pixels.split(16)])


def original_step(work: Workload, timestep: torch.Tensor) -> torch.Tensor:
    """The original's step (reference §4.1 step 12): per tile PoseNet, uncond call, cond call."""
    cond = work.conditioning
    image_latents = cond.image_latents[:, None].expand(1, work.latents.shape[1], -1, -1, -1)
    noise_pred = torch.zeros((2, *work.latents.shape[1:]), device=work.latents.device, dtype=work.latents.dtype)
    counts = work.weights.new_zeros(work.latents.shape[1])
    weights = work.weights[:, None, None, None]
    for idx in work.tiles:
        pose_latents = work.pose_net(work.pose_pixels[idx])
        uncond_sample = torch.cat([work.latents[:, idx], torch.zeros_like(image_latents[:, idx])], dim=2)
        cond_sample = torch.cat([work.latents[:, idx], image_latents[:, idx]], dim=2)
        embeddings = cond.image_embeddings
        uncond = work.unet(uncond_sample, timestep, torch.zeros_like(embeddings), cond.added_time_ids)[0]
        noise_pred[:1, idx] += uncond * weights
        conditioned = work.unet(cond_sample, timestep, embeddings, cond.added_time_ids, pose_latents=pose_latents)
        noise_pred[1:, idx] += conditioned[0] * weights
        counts[idx] += work.weights
    return apply_guidance(noise_pred / counts[:, None, None, None], work.guidance)


def our_step(work: Workload, timestep: torch.Tensor, tiles_per_call: int) -> torch.Tensor:
    noise_pred = predict_fused_noise(
        work.unet, work.latents, timestep, work.conditioning, work.tile_frames, work.weights, tiles_per_call
    )
    return apply_guidance(noise_pred, work.guidance)


def count_work(step: Callable[[], torch.Tensor], work: Workload) -> tuple[float, int]:
    """GFLOP and UNet calls of one step, run eagerly: compiled kernels bypass torch's FLOP counter."""
    calls = [0]
    handle = work.unet.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        step()
    handle.remove()
    return counter.get_total_flops() / 1e9, calls[0]


def measure(
    step: Callable[[], torch.Tensor], work: Workload, repeats: int, counted: tuple[float, int] | None = None
) -> dict[str, float]:
    """Seconds per step (mean of ``repeats`` after one warm-up), UNet calls, FLOPs and peak memory.

    ``counted``: the step's (GFLOP, UNet calls) counted before it was compiled; else the warm-up counts.
    """
    device = work.latents.device
    gflop, unet_calls = counted if counted is not None else count_work(step, work)
    with torch.no_grad():
        if counted is not None:
            step()  # warm-up: compiles, autotunes
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        for _ in range(repeats):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - start) / repeats
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {"seconds": seconds, "unet_calls": unet_calls, "gflop": gflop, "peak_gib": peak}


def measure_pose_net(work: Workload) -> float:
    start = time.perf_counter()
    _pose_latents(work.pose_net, work.pose_pixels)
    if work.latents.device.type == "cuda":
        torch.cuda.synchronize(work.latents.device)
    return time.perf_counter() - start


def _gib(value: float) -> str:
    return "n/a" if value != value else f"{value:.2f}"  # NaN off CUDA, where no allocator peak exists


def peak_tflops(device: torch.device, dtype: torch.dtype, override: float | None) -> float | None:
    if override is not None:
        return override
    if device.type != "cuda" or dtype == torch.float32:
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for fragment, peak in PEAK_TFLOPS_16BIT if fragment in name), None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--dtype", default="auto", help="auto (bfloat16 on CUDA, float32 on CPU), float16, ...")
    parser.add_argument("--model", choices=("tiny", "svd-xt"), help="default: svd-xt on CUDA, tiny on CPU")
    parser.add_argument("--frames", type=int, help="tile size T (default 72 on CUDA, 8 on CPU)")
    parser.add_argument("--overlap", type=int, default=6)
    parser.add_argument("--tiles", type=int, default=2, help="tiles in the video")
    parser.add_argument("--height", type=int, help="pixels (default 1024 on CUDA, 64 on CPU)")
    parser.add_argument("--width", type=int, help="pixels (default 576 on CUDA, 48 on CPU)")
    parser.add_argument("--steps", type=int, default=3, help="timed repeats of one denoising step")
    parser.add_argument("--tiles-per-call", type=int, help="tiles per UNet call in ours (default: all tiles)")
    parser.add_argument("--peak-tflops", type=float, help="device peak for the utilisation column")
    parser.add_argument("--channels-last", action="store_true", help="ours: channels-last conv weights")
    parser.add_argument("--compile", action="store_true", help="ours: torch.compile the UNet blocks (slow start)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    on_cuda = device.type == "cuda"
    model = args.model or ("svd-xt" if on_cuda else "tiny")
    args.frames = args.frames or (72 if on_cuda else 8)
    args.overlap = min(args.overlap, args.frames - 1)
    args.height, args.width = args.height or (1024 if on_cuda else 64), args.width or (576 if on_cuda else 48)
    work = build_workload(model, args, device, dtype)
    pose_seconds = measure_pose_net(work)
    tiles_per_call = args.tiles_per_call or len(work.tiles)
    if on_cuda:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    timestep = torch.tensor(1.0, device=device)
    results = {
        "original": measure(lambda: original_step(work, timestep), work, args.steps),
    }
    ours = lambda: our_step(work, timestep, tiles_per_call)  # noqa: E731
    ours_counted = count_work(ours, work)  # the same FLOPs compiled or not; counted eagerly
    if args.channels_last or args.compile:  # after the original's run, which must not get them
        if args.channels_last:
            to_channels_last(work.unet)
        if args.compile:
            compile_blocks(work.unet, "max-autotune-no-cudagraphs" if on_cuda else None)
    results["ours"] = measure(ours, work, args.steps, counted=ours_counted)
    peak = peak_tflops(device, dtype, args.peak_tflops)
    name = torch.cuda.get_device_name(device) if on_cuda else "CPU"
    print(f"{name}, {model} UNet, {dtype}, {len(work.tiles)} tiles of {args.frames} frames at "
          f"{args.height}x{args.width} px, ours with {tiles_per_call} tile(s) per call")  # fmt: skip
    print(f"{'schedule':<10}{'UNet calls':>11}{'s/step':>10}{'GFLOP/step':>14}{'peak GiB':>10}{'MFU':>8}")
    for schedule, result in results.items():
        mfu = f"{result['gflop'] / 1e3 / result['seconds'] / peak:.1%}" if peak else "n/a"
        print(
            f"{schedule:<10}{result['unet_calls']:>11}{result['seconds']:>10.3f}{result['gflop']:>14.1f}"
            f"{_gib(result['peak_gib']):>10}{mfu:>8}"
        )
    print(f"ours / original time: {results['ours']['seconds'] / results['original']['seconds']:.2f}")
    print(f"ours runs PoseNet once per job instead: {pose_seconds:.3f} s for {work.latents.shape[1]} frames")
    # Seconds per tile-step scale linearly in tiles at a fixed tile size; PoseNet is once per job in ours.
    for schedule, result in results.items():
        per_tile_step = result["seconds"] / len(work.tiles)
        demo_s = per_tile_step * DEMO_TILES * DEMO_STEPS
        print(f"projected 35-s demo ({DEMO_TILES} tiles x {DEMO_STEPS} steps), {schedule}: {demo_s:.0f} s denoising"
              + ("" if args.frames == 72 and on_cuda else " (at this bench's tile size and resolution)"))  # fmt: skip


if __name__ == "__main__":
    main()
