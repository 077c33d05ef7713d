"""Load the MimicMotion models from a checked model directory onto one device, in one dtype.

The UNet architecture comes from ``svd/unet/config.json`` and its weights from the MimicMotion
checkpoint (``unet.*`` keys), as in the original (reference §2); PoseNet from ``pose_net.*``; VAE and
CLIP from ``svd/``. Unlike the original's ``strict=False``, any key mismatch is a ModelFilesError.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers.models.autoencoders.autoencoder_kl_temporal_decoder import AutoencoderKLTemporalDecoder
from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteScheduler
from torch import nn
from transformers import CLIPVisionModelWithProjection

from core.errors import ModelFilesError
from core.models.files import ModelFiles
from core.models.pose_net import PoseNet
from core.models.unet import PoseConditionedUNet

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_MAX_KEYS_LISTED = 8


@dataclass
class MimicMotionModels:
    """Every model the generation pipeline needs, in eval mode on ``device`` in ``dtype``."""

    unet: PoseConditionedUNet
    pose_net: PoseNet
    vae: AutoencoderKLTemporalDecoder
    image_encoder: CLIPVisionModelWithProjection
    image_mean: tuple[float, float, float]  # CLIP normalisation, from feature_extractor/ (reference §2)
    image_std: tuple[float, float, float]
    scheduler_config: dict[str, Any]  # svd/scheduler config; each call builds a fresh scheduler from it
    device: torch.device
    dtype: torch.dtype


def resolve_device(setting: str) -> torch.device:
    """``auto`` picks CUDA when available, else CPU; ``cpu``, ``cuda`` and ``cuda:N`` are taken as given."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {setting!r} requested, but this torch build sees no CUDA device")
    return device


def resolve_dtype(setting: str, device: torch.device) -> torch.dtype:
    """``auto`` is bfloat16 on CUDA and float32 on CPU; otherwise the named dtype."""
    if setting == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if setting not in _DTYPES:
        raise ValueError(f"dtype must be auto, {', '.join(_DTYPES)}; got {setting!r}")
    return _DTYPES[setting]


def load_models(files: ModelFiles, device: torch.device | str, dtype: torch.dtype) -> MimicMotionModels:
    """Build every model, load its weights strictly and move it to ``device`` in ``dtype``.

    Raises:
        ModelFilesError: a file is unreadable, or the checkpoint's keys or shapes do not match.
    """
    device = torch.device(device)
    checkpoint = _read_checkpoint(files.checkpoint)
    unet_config = PoseConditionedUNet.load_config(files.svd_dir / "unet")
    # Build on the meta device and take the checkpoint's tensors (assign=True): random-initialising
    # 1.5 B parameters first would take most of a minute for nothing.
    with torch.device("meta"):
        unet = PoseConditionedUNet.from_config(unet_config)
    _load_strict(unet, _with_prefix(checkpoint, "unet."), files.checkpoint, "unet.")
    pose_net = PoseNet(out_channels=unet.config["block_out_channels"][0])
    _load_strict(pose_net, _with_prefix(checkpoint, "pose_net."), files.checkpoint, "pose_net.")
    foreign = sorted(key for key in checkpoint if not key.startswith(("unet.", "pose_net.")))
    if foreign:
        raise ModelFilesError(f"{files.checkpoint} {_listing('unexpected', '', foreign)}expected unet.* and pose_net.*")
    del checkpoint
    vae = _from_pretrained(AutoencoderKLTemporalDecoder, files.svd_dir / "vae", files.vae_variant)
    image_encoder = _from_pretrained(
        CLIPVisionModelWithProjection, files.svd_dir / "image_encoder", files.image_encoder_variant
    )
    processor = json.loads((files.svd_dir / "feature_extractor" / "preprocessor_config.json").read_text())
    scheduler_config = dict(EulerDiscreteScheduler.load_config(files.svd_dir / "scheduler"))
    return MimicMotionModels(
        unet=_ready(unet, device, dtype),
        pose_net=_ready(pose_net, device, dtype),
        vae=_ready(vae, device, dtype),
        image_encoder=_ready(image_encoder, device, dtype),
        image_mean=_triple(processor["image_mean"]),
        image_std=_triple(processor["image_std"]),
        scheduler_config=scheduler_config,
        device=device,
        dtype=dtype,
    )


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors here; all mean a bad file
        raise ModelFilesError(f"cannot read {path}: expected a torch state dict ({exc})") from exc
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ModelFilesError(f"malformed {path}: expected a flat state dict of tensors")
    return state


def _with_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key.removeprefix(prefix): value for key, value in state.items() if key.startswith(prefix)}


def _load_strict(module: nn.Module, state: dict[str, torch.Tensor], path: Path, prefix: str) -> None:
    """The original loaded with strict=False, which silently keeps a random UNet on a key mismatch."""
    expected = set(module.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ModelFilesError(
            f"{path} does not match the {prefix}* model built from svd/unet/config.json: "
            f"{_listing('missing', prefix, missing)}{_listing('unexpected', prefix, unexpected)}"
        )
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:  # shape mismatches
        raise ModelFilesError(f"{path}: {prefix}* weights do not fit svd/unet/config.json: {exc}") from exc


def _listing(kind: str, prefix: str, keys: list[str]) -> str:
    if not keys:
        return ""
    shown = ", ".join(prefix + key for key in keys[:_MAX_KEYS_LISTED])
    more = f" and {len(keys) - _MAX_KEYS_LISTED} more" if len(keys) > _MAX_KEYS_LISTED else ""
    return f"{len(keys)} {kind} keys ({shown}{more}); "


def _from_pretrained(cls: Any, folder: Path, variant: str | None) -> Any:
    try:
        return cls.from_pretrained(folder, variant=variant, local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelFilesError(f"cannot load {folder}: expected SVD-xt-1.1 {folder.name} weights ({exc})") from exc


def _ready(module: Any, device: torch.device, dtype: torch.dtype) -> Any:
    # nn.Module.to, not diffusers' ModelMixin.to, which warns about fp32 modules even when it lists none.
    nn.Module.to(module, device=device, dtype=dtype)
    module.eval()
    module.requires_grad_(False)
    return module


def _triple(values: list[float]) -> tuple[float, float, float]:
    first, second, third = (float(value) for value in values)
    return first, second, third
