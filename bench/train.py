"""Time one training step (UNet + PoseNet forward, backward, AdamW) and its peak memory.

CPU default: the tiny model at 4 frames 64x64. CUDA default: the full SVD-xt UNet with random
weights built on the device, 16 frames at 576x1024, bf16 autocast and gradient checkpointing (same
compute as real weights, no download). The frozen VAE and CLIP are left out: their encode is a
small share of a step and does not hold optimizer state; latents and embeddings are random.

    .venv/bin/python -m bench.train                       # CPU, tiny model
    .venv/bin/python -m bench.train --device cuda         # full SVD-xt UNet, 16 x 576x1024
    .venv/bin/python -m bench.train --device cuda --no-gradient-checkpointing --num-frames 8
"""

import argparse
import resource
import statistics
import time
from types import SimpleNamespace
from typing import Any, cast

import torch

from bench.pipeline import SVD_XT_UNET_CONFIG
from core.models.loading import MimicMotionModels, resolve_device
from core.models.pose_net import PoseNet
from core.models.tiny import UNET_CONFIG as TINY_UNET_CONFIG
from core.models.unet import PoseConditionedUNet
from core.training.objective import EncodedBatch, TrainableModel, forward_loss


def build(args: argparse.Namespace, device: torch.device) -> tuple[TrainableModel, Any, torch.optim.Optimizer]:
    config = SVD_XT_UNET_CONFIG if args.model == "svd-xt" else TINY_UNET_CONFIG
    torch.manual_seed(0)
    with device:
        unet = PoseConditionedUNet(**config)
        pose_net = PoseNet(out_channels=config["block_out_channels"][0])
    model = TrainableModel(unet, pose_net).train()
    if args.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    # forward_loss reads only the UNet config, dtype and device from the model bundle.
    models = SimpleNamespace(unet=unet, dtype=torch.float32, device=device)
    if args.use_8bit_adam:
        import bitsandbytes

        optimizer: torch.optim.Optimizer = bitsandbytes.optim.AdamW8bit(model.parameters(), lr=1e-5)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    return model, models, optimizer


def random_batch(args: argparse.Namespace, model: TrainableModel, device: torch.device) -> EncodedBatch:
    generator = torch.Generator().manual_seed(1)
    frames, height, width = args.num_frames, args.height, args.width
    latent = (1, frames, 4, height // 8, width // 8)
    width_clip = model.unet.config["cross_attention_dim"]
    return EncodedBatch(
        latents=torch.randn(latent, generator=generator).to(device),
        image_embeddings=torch.randn((1, 1, width_clip), generator=generator).to(device),
        image_latents=torch.randn(latent[:1] + latent[2:], generator=generator).to(device),
        pose_pixels=(torch.rand((1, frames, 3, height, width), generator=generator) * 2 - 1).to(device),
        loss_weights=torch.ones(latent[:2] + latent[3:]).to(device),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", choices=("tiny", "svd-xt"), default=None, help="default: tiny (CPU), svd-xt (CUDA)")
    parser.add_argument("--num-frames", type=int, default=None, help="default: 4 (tiny), 16 (svd-xt)")
    parser.add_argument("--height", type=int, default=None, help="default: 64 (tiny), 576 (svd-xt)")
    parser.add_argument("--width", type=int, default=None, help="default: 64 (tiny), 1024 (svd-xt)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps after 2 warm-up steps")
    parser.add_argument("--mixed-precision", choices=("auto", "bf16", "no"), default="auto")
    parser.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false")
    parser.add_argument("--use-8bit-adam", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    full = device.type == "cuda"
    args.model = args.model or ("svd-xt" if full else "tiny")
    args.num_frames = args.num_frames or (16 if args.model == "svd-xt" else 4)
    args.height = args.height or (576 if args.model == "svd-xt" else 64)
    args.width = args.width or (1024 if args.model == "svd-xt" else 64)
    autocast = {"auto": torch.bfloat16 if full else None, "bf16": torch.bfloat16, "no": None}[args.mixed_precision]

    model, models, optimizer = build(args, device)
    batch = random_batch(args, model, device)
    num_params = sum(p.numel() for p in model.parameters())
    times = []
    for step in range(2 + args.steps):
        if full:
            torch.cuda.synchronize()
        started = time.perf_counter()
        outputs = forward_loss(
            model, cast(MimicMotionModels, models), batch, torch.Generator().manual_seed(step), cond_drop_prob=0.1,
            noise_aug_strength=0.0, p_mean=0.5, p_std=1.4, autocast_dtype=autocast,
        )  # fmt: skip
        optimizer.zero_grad(set_to_none=True)
        outputs.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if full:
            torch.cuda.synchronize()
        if step >= 2:
            times.append(time.perf_counter() - started)
    if full:
        memory = f"peak allocated {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB"
        memory += f", reserved {torch.cuda.max_memory_reserved(device) / 2**30:.1f} GiB"
        name = torch.cuda.get_device_name(device)
    else:
        memory = f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (process)"
        name = "cpu"
    print(
        f"{name}: {args.model} UNet+PoseNet ({num_params / 1e6:.1f} M trainable), {args.num_frames} frames "
        f"{args.height}x{args.width}, autocast {autocast}, checkpointing {args.gradient_checkpointing}, "
        f"{'AdamW8bit' if args.use_8bit_adam else 'AdamW'}: step {statistics.median(times):.3f} s median of "
        f"{len(times)} (min {min(times):.3f}), {1 / statistics.median(times):.3f} clips/s; {memory}; "
        f"last loss {outputs.loss.item():.4f}"
    )


if __name__ == "__main__":
    main()
