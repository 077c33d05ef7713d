"""Speed and memory options of the pipeline, and how they are applied to loaded models.

Every option either leaves float32 CPU output unchanged or is off by default; tests compare each
against the default path. No I/O here, and no settings: callers build ``PerformanceOptions``.
"""

import copy
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from core.models.loading import MimicMotionModels
from core.models.unet import PoseConditionedUNet

logger = logging.getLogger(__name__)

CfgMode = Literal["batched", "sequential"]
VaeDevice = Literal["same", "cpu"]

# Input shapes each compiled block gets room for: a job runs its tile batch and a smaller last group
# (two shapes per resolution and tile size), the warm-up one tile, sequential guidance half the rows.
GRAPHS_PER_BLOCK = 16


@dataclass(frozen=True)
class PerformanceOptions:
    """How the pipeline spends memory and time; the defaults suit one GPU of 40 GB or more."""

    # float32 matmuls and convolutions on TF32 tensor cores (CUDA only). Only what stays float32 is
    # affected: the VAE decode's float32 work under the "cpu" VAE is on CPU anyway, so this touches
    # float32 runs on CUDA alone, by about 1e-3 relative.
    tf32: bool = True
    # Weights in NHWC: cuDNN's 16-bit convolutions run without layout transposes. Output-preserving.
    channels_last: bool = False
    # torch.compile the UNet's blocks (inductor). The first call per shape compiles for minutes; the
    # worker warms it up at start, and inductor caches kernels on disk for later processes.
    compile_unet: bool = False
    # "batched": uncond and cond rows in one UNet call (fastest). "sequential": one call per row,
    # half the activation memory, for 16-24 GB cards.
    cfg_mode: CfgMode = "batched"
    # "cpu": the VAE lives on the CPU in float32 (encode once, decode at the end), keeping its
    # weights and the decoder's large activations off the GPU; decoding is slower.
    vae_device: VaeDevice = "same"
    # Extra devices for one job's tiles, e.g. ("cuda:1", "cuda:2"): each holds a UNet replica and
    # runs its share of a step's tiles; predictions are fused on the main device.
    tile_devices: tuple[str, ...] = field(default_factory=tuple)


def apply_performance(
    models: MimicMotionModels, options: PerformanceOptions, helper_unets: list[PoseConditionedUNet]
) -> None:
    """Put the loaded models (and the UNet replicas of ``tile_devices``) in the shape ``options`` asks for."""
    unets = [models.unet, *helper_unets]
    if models.device.type == "cuda":
        # Process-wide switches: one worker process serves one model, so nothing else depends on them.
        torch.backends.cuda.matmul.allow_tf32 = options.tf32
        torch.backends.cudnn.allow_tf32 = options.tf32
        torch.backends.cudnn.benchmark = True  # fixed shapes per job: pick the fastest conv once
    for unet in unets:
        _require_sdpa(unet)
    if options.channels_last:
        for module in (*unets, models.pose_net):
            to_channels_last(module)
    if options.vae_device == "cpu":
        # float32 on CPU: 16-bit convolutions there are emulated and far slower.
        torch.nn.Module.to(models.vae, device="cpu", dtype=torch.float32)
    if options.compile_unet:
        mode = "max-autotune-no-cudagraphs" if models.device.type == "cuda" else None
        for unet in unets:
            compile_blocks(unet, mode)


def replicate_unet(unet: PoseConditionedUNet, devices: tuple[str, ...]) -> list[PoseConditionedUNet]:
    """One UNet copy per extra device, same weights and dtype.

    Always a copy, even on the main device: PoseConditionedUNet adds its pose latents through a hook
    that lives for one call, so two threads must never share one module. Call before
    ``apply_performance`` compiles, so each copy compiles for its own device.
    """
    replicas = []
    for name in devices:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"tile device {name!r} requested, but this torch build sees no CUDA device")
        replica = copy.deepcopy(unet)
        torch.nn.Module.to(replica, device=device)  # not ModelMixin.to (see core.models.loading._ready)
        replicas.append(replica)
    return replicas


def compile_blocks(unet: PoseConditionedUNet, mode: str | None) -> None:
    """Compile the UNet's down, mid and up blocks (regional compilation), where nearly all FLOPs are.

    Not the whole UNet: its pose latents enter through a per-call hook on ``conv_in``, which would
    make every call a new graph. nn.Module.compile keeps each module and compiles its __call__.

    Dynamo keeps at most ``recompile_limit`` (8) graphs per code object and then runs that code
    eagerly, with one warning. Blocks of one class share their forward's code object, and each block
    (its own widths), input shape and device (each replica) is a graph of its own: SVD's three
    CrossAttnDownBlockSpatioTemporal would pass 8 at the third shape, e.g. in the first tiled job after
    the warm-up. So each compiled UNet raises the limit by what its blocks need.
    """
    blocks = (*unet.down_blocks, unet.mid_block, *unet.up_blocks)
    blocks_per_forward = max(Counter(type(block).forward for block in blocks).values())
    dynamo_config = torch._dynamo.config
    dynamo_config.recompile_limit += blocks_per_forward * GRAPHS_PER_BLOCK
    dynamo_config.accumulated_recompile_limit = max(
        dynamo_config.accumulated_recompile_limit, dynamo_config.recompile_limit
    )
    for block in blocks:
        block.compile(mode=mode, dynamic=False)


def to_channels_last(module: torch.nn.Module) -> None:
    # Only the 2D convolutions: the temporal layers hold 5D tensors, which have no channels_last.
    for layer in module.modules():
        if isinstance(layer, torch.nn.Conv2d):
            layer.weight.data = layer.weight.data.contiguous(memory_format=torch.channels_last)


def _require_sdpa(unet: PoseConditionedUNet) -> None:
    """SVD's attention must go through scaled_dot_product_attention (flash / memory-efficient kernels)."""
    processors = {type(processor).__name__ for processor in unet.attn_processors.values()}
    if processors != {AttnProcessor2_0.__name__}:
        logger.warning("UNet attention processors %s: expected only AttnProcessor2_0; setting it", processors)
        unet.set_attn_processor(AttnProcessor2_0())
