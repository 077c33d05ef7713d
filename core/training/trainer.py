"""The training loop: UNet and PoseNet trained, VAE and CLIP frozen; AdamW with warm-up; resumable.

Single process or torchrun/DDP (``distributed.py``). Every random draw of step s comes from a CPU
generator seeded with (seed, s, rank) and the data order from (seed, epoch), so a resumed run
continues the very same loss curve. Loss and throughput go to the log and to ``metrics.jsonl``.
"""

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from core.errors import ConfigurationError
from core.models.files import CHECKPOINT_FILE, resolve_model_files
from core.models.loading import MimicMotionModels, load_models
from core.models.pose_net import PoseNet
from core.training import checkpoint, distributed
from core.training.data_prep import read_manifest
from core.training.dataset import SampleConfig, TripletDataset
from core.training.distributed import DistributedContext
from core.training.edm import DEFAULT_P_MEAN, DEFAULT_P_STD
from core.training.objective import ForwardOutputs, TrainableModel, encode_batch, forward_loss

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    """A training run; defaults follow training.md §4.6 (paper where known, then SVD, then peers)."""

    data_dir: Path
    model_dir: Path
    out_dir: Path
    sample: SampleConfig = field(default_factory=SampleConfig)
    batch_size: int = 1  # clips per process and step (the paper: 8 GPUs x 1)
    max_steps: int = 10_000
    learning_rate: float = 1e-5
    warmup_steps: int = 500  # linear warm-up, then constant
    weight_decay: float = 1e-2
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    cond_drop_prob: float = 0.1  # all three conditions dropped together (training.md §4.5)
    noise_aug_strength: float = 0.0  # reference pixel noise and its micro-condition (inference config: 0)
    p_mean: float = DEFAULT_P_MEAN
    p_std: float = DEFAULT_P_STD
    mixed_precision: str = "auto"  # auto (bf16 on CUDA, none on CPU), bf16, no
    gradient_checkpointing: bool = True
    use_8bit_adam: bool = False  # bitsandbytes AdamW8bit; bitsandbytes is not a dependency
    fresh_pose_net: bool = False  # start PoseNet from scratch (zero final projection) instead of the checkpoint
    checkpoint_every: int = 500
    log_every: int = 10
    num_workers: int = 2
    seed: int = 0
    device: str = "auto"


@dataclass
class TrainResult:
    """What a run did: the losses of the steps it ran (1-based step -> mean loss over processes)."""

    losses: dict[int, float]
    last_step: int
    checkpoint_dir: Path | None


class Trainer:
    """Models, optimizer and schedule for one process; ``step`` runs one optimisation step."""

    def __init__(self, config: TrainConfig, models: MimicMotionModels, context: DistributedContext) -> None:
        self.config, self.models, self.context = config, models, context
        self.autocast_dtype = _autocast_dtype(config.mixed_precision, context.device)
        self.frozen = _frozen_view(models, self.autocast_dtype)
        self.module = TrainableModel(models.unet, models.pose_net)
        self.module.train().requires_grad_(True)
        if config.gradient_checkpointing:
            models.unet.enable_gradient_checkpointing()
        self.model: nn.Module = self.module
        if context.is_distributed:
            device_ids = [context.device.index] if context.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.module, device_ids=device_ids)
        self.optimizer = _build_optimizer(self.module.parameters(), config)
        warmup = max(0, config.warmup_steps)
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
        )
        self.step_count = 0  # optimisation steps done

    def step_generator(self, step: int) -> torch.Generator:
        """The CPU generator of every random draw of 1-based ``step`` on this process."""
        return torch.Generator("cpu").manual_seed(self.config.seed * 1_000_003 + step * 1_009 + self.context.rank)

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> ForwardOutputs:
        """Encode and run the loss for ``batch`` (no optimizer step)."""
        config = self.config
        encoded = encode_batch(self.frozen, batch, config.noise_aug_strength, generator)
        return forward_loss(
            self.model, self.models, encoded, generator, cond_drop_prob=config.cond_drop_prob,
            noise_aug_strength=config.noise_aug_strength, p_mean=config.p_mean, p_std=config.p_std,
            autocast_dtype=self.autocast_dtype,
        )  # fmt: skip

    def step(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> float:
        """One optimisation step; returns this process's loss."""
        generator = generator or self.step_generator(self.step_count + 1)
        outputs = self.forward(batch, generator)
        self.optimizer.zero_grad(set_to_none=True)
        outputs.loss.backward()
        if self.config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.lr_schedule.step()
        self.step_count += 1
        return float(outputs.loss.item())

    def training_state(self) -> dict[str, Any]:
        config = {key: str(value) for key, value in dataclasses.asdict(self.config).items()}
        return {
            "optimizer": self.optimizer.state_dict(), "lr_schedule": self.lr_schedule.state_dict(), "config": config,
        }  # fmt: skip

    def save(self) -> Path:
        state = checkpoint.model_state_dict(self.module.unet, self.module.pose_net)
        return checkpoint.save_checkpoint(self.config.out_dir, self.step_count, state, self.training_state())

    def resume(self, directory: Path) -> None:
        """Load the model, optimizer and schedule state of a checkpoint directory."""
        model_state, state = checkpoint.load_checkpoint(directory)
        self.module.load_state_dict(model_state, strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["lr_schedule"])
        self.step_count = int(state["step"])


def load_training_models(config: TrainConfig, device: torch.device) -> MimicMotionModels:
    """The model directory's models in float32 (the trained weights stay float32 masters)."""
    models = load_models(resolve_model_files(config.model_dir), device, torch.float32)
    if config.fresh_pose_net:
        # The paper trains PoseNet from scratch: He-normal convolutions and a zero final projection.
        pose_net = PoseNet(out_channels=models.unet.config["block_out_channels"][0])
        models.pose_net = pose_net.to(device)
    return models


def train(config: TrainConfig, on_step: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train until ``config.max_steps``, resuming from ``config.out_dir``'s latest checkpoint if any."""
    context = distributed.init_distributed(config.device)
    try:
        return _train(config, context, on_step)
    finally:
        distributed.shutdown(context)


def _train(
    config: TrainConfig, context: DistributedContext, on_step: Callable[[int, float], None] | None
) -> TrainResult:
    torch.manual_seed(config.seed)  # only model construction draws from the global RNG
    dataset = TripletDataset(read_manifest(config.data_dir), config.data_dir, config.sample)
    trainer = Trainer(config, load_training_models(config, context.device), context)
    resumed_from = checkpoint.latest_checkpoint(config.out_dir)
    if resumed_from is not None:
        trainer.resume(resumed_from)
        logger.info("resumed from %s at step %d", resumed_from, trainer.step_count)
    sampler: DistributedSampler[tuple[int, int]] = DistributedSampler(
        dataset, num_replicas=context.world_size, rank=context.rank, shuffle=True, seed=config.seed, drop_last=True
    )
    steps_per_epoch = len(sampler) // config.batch_size
    if steps_per_epoch == 0:
        raise ConfigurationError(
            f"{len(dataset)} samples cannot fill one batch of {config.batch_size} on each of "
            f"{context.world_size} processes: prepare more videos or raise samples_per_video"
        )
    losses: dict[int, float] = {}
    last_checkpoint: Path | None = resumed_from
    metrics = _MetricsLog(config.out_dir / METRICS_FILE, enabled=context.is_main)
    started, window_start = time.perf_counter(), trainer.step_count
    for batch in _batches(dataset, sampler, config, steps_per_epoch, trainer.step_count):
        loss = trainer.step(batch)
        step = trainer.step_count
        losses[step] = distributed.mean_across_processes(loss, context)
        metrics.write(step, losses[step], float(trainer.lr_schedule.get_last_lr()[0]), started)
        if on_step is not None:
            on_step(step, losses[step])
        if step % config.log_every == 0 or step == config.max_steps:
            _log_progress(step, losses, started, step - window_start, config, context)
            started, window_start = time.perf_counter(), step
        if step % config.checkpoint_every == 0 or step == config.max_steps:
            if context.is_main:
                last_checkpoint = trainer.save()
                _export_final(config.out_dir, last_checkpoint)
            distributed.barrier(context)
    return TrainResult(losses=losses, last_step=trainer.step_count, checkpoint_dir=last_checkpoint)


def _batches(
    dataset: TripletDataset, sampler: DistributedSampler, config: TrainConfig, steps_per_epoch: int, done: int
) -> Iterator[dict[str, torch.Tensor]]:
    """Batches for steps done+1 .. max_steps: epoch e shuffles with (seed, e); finished batches are skipped."""
    step = done
    while step < config.max_steps:
        epoch = step // steps_per_epoch
        sampler.set_epoch(epoch)
        indices = list(sampler)
        batches = [
            [(index, epoch) for index in indices[k * config.batch_size : (k + 1) * config.batch_size]]
            for k in range(step % steps_per_epoch, steps_per_epoch)
        ][: config.max_steps - step]
        loader = DataLoader(dataset, batch_sampler=batches, num_workers=config.num_workers)
        for batch in loader:
            yield batch
            step += 1


class _MetricsLog:
    """One JSON line per step on the main process: step, loss, lr, seconds since the last log line."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled
        if enabled:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, step: int, loss: float, lr: float, started: float) -> None:
        if not self.enabled:
            return
        record = {"step": step, "loss": loss, "lr": lr, "elapsed_s": round(time.perf_counter() - started, 4)}
        with self.path.open("a") as file:
            file.write(json.dumps(record) + "\n")


def _log_progress(
    step: int, losses: dict[int, float], started: float, num_steps: int, config: TrainConfig,
    context: DistributedContext,
) -> None:  # fmt: skip
    if not context.is_main or num_steps <= 0:
        return
    seconds = time.perf_counter() - started
    recent = [losses[s] for s in range(step - num_steps + 1, step + 1) if s in losses]
    clips_per_s = num_steps * config.batch_size * context.world_size / seconds
    memory = ""
    if context.device.type == "cuda":
        memory = f", peak memory {torch.cuda.max_memory_allocated(context.device) / 2**30:.1f} GiB"
    logger.info(
        "step %d/%d: loss %.5f (mean of %d), %.2f s/step, %.2f clips/s%s",
        step, config.max_steps, sum(recent) / len(recent), len(recent), seconds / num_steps, clips_per_s, memory,
    )  # fmt: skip


def _export_final(out_dir: Path, directory: Path) -> None:
    """``out_dir/MimicMotion_1-1.pth`` = the latest checkpoint's model, ready to drop into a model directory."""
    target = out_dir / CHECKPOINT_FILE
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes((directory / CHECKPOINT_FILE).read_bytes())
    partial.replace(target)


def _autocast_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    if setting == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if setting == "bf16":
        return torch.bfloat16
    if setting == "no":
        return None
    raise ConfigurationError(f"mixed_precision must be auto, bf16 or no; got {setting!r}")


def _frozen_view(models: MimicMotionModels, autocast_dtype: torch.dtype | None) -> MimicMotionModels:
    """The frozen VAE and CLIP, cast to the autocast dtype when there is one (they need no float32 masters)."""
    if autocast_dtype is None:
        return models
    vae = nn.Module.to(models.vae, dtype=autocast_dtype)
    image_encoder = nn.Module.to(models.image_encoder, dtype=autocast_dtype)
    return dataclasses.replace(models, vae=vae, image_encoder=image_encoder, dtype=autocast_dtype)


def _build_optimizer(parameters: Iterator[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    kwargs: dict[str, Any] = {
        "lr": config.learning_rate, "betas": config.adam_betas, "eps": config.adam_eps,
        "weight_decay": config.weight_decay,
    }  # fmt: skip
    if not config.use_8bit_adam:
        return torch.optim.AdamW(parameters, **kwargs)
    try:
        import bitsandbytes
    except ImportError as exc:
        raise ConfigurationError(
            "8-bit AdamW needs bitsandbytes, which is not installed: `pip install bitsandbytes` (CUDA only), "
            "or train without --use-8bit-adam"
        ) from exc
    optimizer: torch.optim.Optimizer = bitsandbytes.optim.AdamW8bit(parameters, **kwargs)
    return optimizer


def total_steps_for_epochs(num_samples: int, epochs: int, batch_size: int, world_size: int) -> int:
    """Steps that cover ``epochs`` passes over ``num_samples`` (the paper: 20 epochs)."""
    return epochs * max(1, math.floor(num_samples / (batch_size * world_size)))
