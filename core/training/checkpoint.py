"""Training checkpoints: the model in the ``MimicMotion_1-1.pth`` layout, plus what resuming needs.

``out/checkpoints/step-00000500/MimicMotion_1-1.pth`` holds ``unet.*`` then ``pose_net.*`` (the
released file's keys, so ``load_models`` takes it unchanged); ``training_state.pt`` next to it holds
the optimizer and LR-schedule state and the step. ``out/latest`` names the newest complete one.
"""

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.models.files import CHECKPOINT_FILE

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
STATE_FILE = "training_state.pt"


def model_state_dict(unet: nn.Module, pose_net: nn.Module) -> "OrderedDict[str, torch.Tensor]":
    """``unet.*`` then ``pose_net.*`` on the CPU, each tensor with its own storage."""
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for prefix, module in (("unet", unet), ("pose_net", pose_net)):
        for name, tensor in module.state_dict().items():
            state[f"{prefix}.{name}"] = tensor.detach().to("cpu", copy=True).contiguous()
    return state


def save_checkpoint(out_dir: Path, step: int, model_state: dict[str, torch.Tensor], state: dict[str, Any]) -> Path:
    """Write the checkpoint for ``step`` and point ``out_dir/latest`` at it; returns its directory.

    ``latest`` moves only after both files are complete, so an interruption mid-write resumes from
    the previous checkpoint.
    """
    directory = Path(out_dir) / CHECKPOINTS_DIR / f"step-{step:08d}"
    directory.mkdir(parents=True, exist_ok=True)
    _save_atomic(dict(model_state), directory / CHECKPOINT_FILE)
    _save_atomic({**state, "step": step}, directory / STATE_FILE)
    latest = Path(out_dir) / LATEST_FILE
    partial = latest.with_name(LATEST_FILE + ".partial")
    partial.write_text(directory.relative_to(out_dir).as_posix() + "\n")
    partial.replace(latest)
    logger.info("checkpoint at step %d written to %s", step, directory)
    return directory


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The directory ``out_dir/latest`` names, or None before the first checkpoint."""
    latest = Path(out_dir) / LATEST_FILE
    if not latest.is_file():
        return None
    directory = Path(out_dir) / latest.read_text().strip()
    if not (directory / CHECKPOINT_FILE).is_file() or not (directory / STATE_FILE).is_file():
        raise FileNotFoundError(f"{latest} names {directory}, which lacks {CHECKPOINT_FILE} or {STATE_FILE}")
    return directory


def load_checkpoint(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(model state dict, training state) of a checkpoint directory, on the CPU."""
    model_state = torch.load(directory / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    state = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)
    return model_state, state


def split_model_state(model_state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(unet state, pose_net state) with their prefixes removed."""
    unet = {key.removeprefix("unet."): value for key, value in model_state.items() if key.startswith("unet.")}
    pose_net = {
        key.removeprefix("pose_net."): value for key, value in model_state.items() if key.startswith("pose_net.")
    }
    return unet, pose_net


def _save_atomic(content: dict[str, Any], path: Path) -> None:
    partial = path.with_name(path.name + ".partial")
    torch.save(content, partial)
    partial.replace(path)
