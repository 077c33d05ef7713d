"""One denoising step's model work: the UNet on every tile, weighted fusion, classifier-free guidance.

Shapes: N' latent frames (reference frame 0 included), T frames per tile, k tiles per UNet call,
4 latent channels, C = PoseNet channels, h, w latent size, D = CLIP width. Reference §4.1 step 12, §5.
"""

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import Literal

import torch

from core.models.unet import PoseConditionedUNet
from core.pipeline.memory import available_memory_bytes, items_that_fit

CfgMode = Literal["batched", "sequential"]

# Rough UNet activation memory per frame of one batch row at the SVD-xt size (72x128 latent, 16-bit):
# the original runs 72-frame batch-1 calls in about 10 GiB including 3 GiB of weights (reference §10).
_ACTIVATION_BYTES_PER_FRAME = 100 * 2**20
_ACTIVATION_LATENT_AREA = 72 * 128
# SVD's temporal attention runs one sequence per latent pixel, a batch of rows * k * h * w. CUDA's
# flash and memory-efficient attention kernels put the batch on a launch-grid axis of at most 65535
# and fail past it with "invalid configuration argument" (pytorch/pytorch#142228, #146704).
_MAX_ATTENTION_BATCH = 65535


@dataclass(frozen=True)
class TileConditioning:
    """Everything a tile's UNet call needs besides the noisy latents; shared by all tiles."""

    image_embeddings: torch.Tensor  # (1, 1, D) CLIP embedding; the uncond branch uses zeros
    image_latents: torch.Tensor  # (1, 4, h, w) reference-image latent; the uncond branch uses zeros
    added_time_ids: torch.Tensor  # (1, 3), identical for both branches (reference §4.1 step 5)
    pose_latents: torch.Tensor  # (N', C, h, w) PoseNet output per frame, computed once per job
    do_classifier_free_guidance: bool

    def to(self, device: torch.device) -> "TileConditioning":
        """A copy on ``device``, made once per job for each extra tile device."""
        return replace(
            self, image_embeddings=self.image_embeddings.to(device), image_latents=self.image_latents.to(device),
            added_time_ids=self.added_time_ids.to(device), pose_latents=self.pose_latents.to(device),
        )  # fmt: skip


@dataclass(frozen=True)
class TileModel:
    """A UNet replica, the job's conditioning and its tiles' frame indices, all on the replica's device."""

    unet: PoseConditionedUNet
    conditioning: TileConditioning
    tiles: Sequence[torch.Tensor]


def tile_frame_indices(tiles: list[list[int]], device: torch.device) -> list[torch.Tensor]:
    """Each tile's frame indices as a tensor on ``device``, made once per job.

    Indexing device tensors with Python lists would build and copy an index tensor host-to-device
    (a stream sync on CUDA) for every tile of every step.
    """
    return [torch.tensor(tile, device=device) for tile in tiles]


def predict_fused_noise(
    unet: PoseConditionedUNet,
    latent_model_input: torch.Tensor,
    timestep: torch.Tensor,
    conditioning: TileConditioning,
    tiles: Sequence[torch.Tensor],
    fusion_weights: torch.Tensor,
    tiles_per_call: int,
    *,
    cfg_mode: CfgMode = "batched",
    helpers: Sequence[TileModel] = (),
) -> torch.Tensor:
    """Run the UNet on every tile and fuse: per frame, sum of w_p * prediction over tiles / sum of w_p.

    Args:
        latent_model_input: (1, N', 4, h, w) scaled noisy latents.
        tiles: (T,) frame indices per tile on the latents' device (``tile_frame_indices``).
        fusion_weights: (T,) in the accumulation dtype (the original's fp16 in a float16 run).
        cfg_mode: "batched" runs both guidance rows in one call; "sequential" one call per row (less memory).
        helpers: UNet replicas on other devices; tile groups are dealt round-robin over the main UNet
            and these, and their predictions come back to the main device for fusion.
    Returns:
        (rows, N', 4, h, w) fused v-prediction in the weights' dtype; rows are [uncond, cond] with
        guidance, [cond] without.
    """
    rows = 2 if conditioning.do_classifier_free_guidance else 1
    num_frames = latent_model_input.shape[1]
    noise_pred = latent_model_input.new_zeros((rows, *latent_model_input.shape[1:]), dtype=fusion_weights.dtype)
    counts = fusion_weights.new_zeros(num_frames)
    weights = fusion_weights[:, None, None, None]  # (T, 1, 1, 1)
    # Groups of tile positions; each device indexes with its own copy of the tiles' frame indices.
    groups = [range(start, min(start + tiles_per_call, len(tiles))) for start in range(0, len(tiles), tiles_per_call)]
    models = [TileModel(unet, conditioning, tiles), *helpers]
    predictions = _predict_groups(models, latent_model_input, timestep, groups, rows, cfg_mode)
    # Tiles accumulate in the original's order, so the float sums round exactly as its sequential loop
    # did, however many devices computed them.
    for group, tile_preds in zip(groups, predictions, strict=True):
        for position, tile in enumerate(group):
            frames = tiles[tile]
            noise_pred[:, frames] += tile_preds[:, position].to(fusion_weights.dtype) * weights
            counts[frames] += fusion_weights
    return noise_pred / counts[:, None, None, None]


def _predict_groups(
    models: list[TileModel],
    latent_model_input: torch.Tensor,
    timestep: torch.Tensor,
    groups: list[range],
    rows: int,
    cfg_mode: CfgMode,
) -> Iterator[torch.Tensor]:
    """(rows, k, T, 4, h, w) per group of tile positions, in group order, on the main device."""
    if len(models) == 1:  # one device: one group at a time, so only one group's output is alive
        model = models[0]
        for group in groups:
            frames = [model.tiles[tile] for tile in group]
            yield _predict_tiles(model.unet, latent_model_input, timestep, model.conditioning, frames, rows, cfg_mode)
        return

    def run_share(index: int) -> list[torch.Tensor]:
        model = models[index]
        device = model.conditioning.image_latents.device
        share = groups[index :: len(models)]  # round-robin: devices finish together when groups are equal
        # Grad mode and the current CUDA device are per thread: a pool thread starts with grad on and
        # on cuda:0. Eager ops follow their tensors' device, but inductor's autotuning (compile_unet)
        # times kernels on the current device's stream, so the thread switches to its device.
        with torch.no_grad(), _current_device(device):
            latents, t = latent_model_input.to(device), timestep.to(device)
            return [
                _predict_tiles(
                    model.unet, latents, t, model.conditioning, [model.tiles[i] for i in group], rows, cfg_mode
                )
                for group in share
            ]

    # One thread per device: each launches its own kernels (torch releases the GIL), so the devices
    # run at once; the main device's share runs in the pool too.
    with ThreadPoolExecutor(max_workers=len(models), thread_name_prefix="tile-device") as pool:
        shares = list(pool.map(run_share, range(len(models))))
    main_device = latent_model_input.device
    for position in range(len(groups)):
        yield shares[position % len(models)][position // len(models)].to(main_device)


def _current_device(device: torch.device) -> AbstractContextManager[object]:
    return torch.cuda.device(device) if device.type == "cuda" else nullcontext()


def _predict_tiles(
    unet: PoseConditionedUNet,
    latent_model_input: torch.Tensor,
    timestep: torch.Tensor,
    conditioning: TileConditioning,
    group: list[torch.Tensor],
    rows: int,
    cfg_mode: CfgMode = "batched",
) -> torch.Tensor:
    """One UNet call for k tiles and both guidance branches: returns (rows, k, T, 4, h, w).

    The original made two batch-1 calls per tile, uncond with ``pose_latents=None``. Batching is exact
    per sample, and a zero pose tensor adds nothing (conv_in(x) + 0 == conv_in(x) bit for bit).
    With ``cfg_mode="sequential"`` the two branches are two calls of k rows each.
    """
    dtype = conditioning.image_latents.dtype
    k, num_tile_frames = len(group), len(group[0])
    noisy = torch.stack([latent_model_input[0, frames] for frames in group]).to(dtype)  # (k, T, 4, h, w)
    image_latents = conditioning.image_latents[:, None].expand(k, num_tile_frames, -1, -1, -1)
    sample = torch.cat([noisy, image_latents], dim=2)  # (k, T, 8, h, w): [noisy, reference latent]
    embeddings = conditioning.image_embeddings.expand(k, -1, -1)  # (k, 1, D)
    pose_latents = torch.stack([conditioning.pose_latents[frames] for frames in group])  # (k, T, C, h, w)
    if rows == 2:
        uncond_sample = torch.cat([noisy, torch.zeros_like(image_latents)], dim=2)
        sample = torch.cat([uncond_sample, sample])  # (2k, T, 8, h, w)
        embeddings = torch.cat([torch.zeros_like(embeddings), embeddings])
        pose_latents = torch.cat([torch.zeros_like(pose_latents), pose_latents])
    added_time_ids = conditioning.added_time_ids.expand(rows * k, -1)
    calls = rows if cfg_mode == "sequential" else 1
    noise_pred = torch.cat([
        unet(sample_part, timestep, embeddings_part, time_ids_part, pose_latents=pose_part, return_dict=False)[0]
        for sample_part, embeddings_part, time_ids_part, pose_part in zip(
            sample.chunk(calls), embeddings.chunk(calls), added_time_ids.chunk(calls), pose_latents.chunk(calls),
            strict=True,
        )
    ])  # fmt: skip
    return noise_pred.unflatten(0, (rows, k))  # (rows*k, T, 4, h, w) -> (rows, k, T, 4, h, w)


def apply_guidance(noise_pred: torch.Tensor, guidance_scale: torch.Tensor) -> torch.Tensor:
    """Classifier-free guidance after fusion: uncond + g * (cond - uncond), g (1, N', 1, 1, 1) per frame."""
    if noise_pred.shape[0] == 1:
        return noise_pred
    noise_pred_uncond, noise_pred_cond = noise_pred.chunk(2)
    return noise_pred_uncond + guidance_scale * (noise_pred_cond - noise_pred_uncond)


def auto_tiles_per_call(
    device: torch.device,
    num_tiles: int,
    num_tile_frames: int,
    latent_size: tuple[int, int],
    rows: int,
    dtype_bytes: int = 2,
) -> int:
    """Tiles per UNet call: 1 on CPU (no gain, more memory); on CUDA as many as free memory and the
    attention kernels' launch grid allow.

    The CUDA figure is an estimate scaled from the SVD-xt activation size; pass ``tiles_per_call``
    explicitly to override it. ``dtype_bytes``: the UNet's activation dtype size (4 for float32).
    """
    if device.type != "cuda" or num_tiles <= 1:
        return 1
    fits_memory = tiles_per_call_for_memory(
        available_memory_bytes(device), num_tiles, num_tile_frames, latent_size, rows, dtype_bytes
    )
    return min(fits_memory, tiles_per_call_for_attention(latent_size, rows))


def tiles_per_call_for_attention(latent_size: tuple[int, int], rows: int) -> int:
    """Most tiles whose temporal attention batch (rows * k * h * w) the CUDA kernels can launch; at least 1."""
    return max(1, _MAX_ATTENTION_BATCH // (rows * latent_size[0] * latent_size[1]))


def tiles_per_call_for_memory(
    available_bytes: int,
    num_tiles: int,
    num_tile_frames: int,
    latent_size: tuple[int, int],
    rows: int,
    dtype_bytes: int,
) -> int:
    """Tiles whose UNet activations fit the headroom share of ``available_bytes``: 1 to num_tiles."""
    area_ratio = latent_size[0] * latent_size[1] / _ACTIVATION_LATENT_AREA
    # The per-frame figure was measured in 16 bits; float32 activations take twice the bytes.
    dtype_ratio = dtype_bytes / 2
    per_tile = rows * num_tile_frames * _ACTIVATION_BYTES_PER_FRAME * area_ratio * dtype_ratio
    return items_that_fit(available_bytes, per_tile, num_tiles)
