"""Seeded torch components with no zero entries, and the files they are written to (safetensors, the
MimicMotion checkpoint, diffusers config.json).
"""

import json
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import torch
from safetensors.torch import save_file
from torch import nn

# Unbounded: mypy does not see diffusers' models as nn.Module subclasses.
ModuleT = TypeVar("ModuleT")

_SAFETENSORS_METADATA = {"format": "pt"}
_REFILL_STD = 0.02  # std of the values that replace zero-initialised entries


def seeded(build: Callable[[], ModuleT], seed: int, seed_offset: int) -> ModuleT:
    """Build a module under its own seed without touching the caller's RNG, then refill its zeros."""
    component_seed = seed * 16 + seed_offset  # one stream per component: editing one keeps the others
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(component_seed)
        module = build()
    _refill_zeros(cast(nn.Module, module), torch.Generator().manual_seed(component_seed))
    cast(nn.Module, module).eval()
    return module


def _refill_zeros(module: nn.Module, generator: torch.Generator) -> None:
    """Replace every zero entry of every floating tensor, so each path changes the output.

    Zero inits (norm biases, PoseNet ``final_proj``, VAE ``mix_factor``...) become N(0, 0.02). Every
    AlphaBlender ``mix_factor`` becomes +-(0.5..1.5), so sigmoid(mix) blends both branches unevenly.
    """
    with torch.no_grad():
        for name, tensor in sorted(module.state_dict(keep_vars=True).items()):
            if not tensor.is_floating_point():
                continue
            if name.endswith("mix_factor"):
                magnitude = 0.5 + torch.rand(tensor.shape, generator=generator)
                sign = torch.where(torch.rand(tensor.shape, generator=generator) < 0.5, -1.0, 1.0)
                tensor.copy_(sign * magnitude)
                continue
            replacement = torch.randn(tensor.shape, generator=generator) * _REFILL_STD
            # a drawn exact zero would defeat the point; nudge it (probability ~0, but cheap)
            replacement = torch.where(replacement == 0, _REFILL_STD, replacement)
            tensor.copy_(torch.where(tensor == 0, replacement.to(tensor.dtype), tensor))


def _state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    # Own, contiguous storage per tensor: the files then hold only what each key names.
    return {name: tensor.detach().clone().contiguous() for name, tensor in module.state_dict().items()}


def save_safetensors(module: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(_state_dict(module), str(path), metadata=_SAFETENSORS_METADATA)


def save_checkpoint(modules: dict[str, Any], path: Path) -> None:
    """A plain OrderedDict like the released ``MimicMotion_1-1.pth``: ``unet.*`` then ``pose_net.*``."""
    checkpoint: OrderedDict[str, torch.Tensor] = OrderedDict()
    for prefix, module in modules.items():
        for name, tensor in _state_dict(module).items():
            checkpoint[f"{prefix}.{name}"] = tensor
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)


def diffusers_config(model: Any) -> dict[str, Any]:
    """The config.json content diffusers' save_pretrained would write (with _class_name, _diffusers_version)."""
    return dict(json.loads(model.to_json_string()))


def write_json(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
