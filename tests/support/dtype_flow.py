"""Which dtype reaches the UNet and the scheduler step in one ``denoise``, which it should be, how close 16 bits stay.

The recorder is a forward pre-hook on the UNet and a pass-through wrapper of the state's ``scheduler.step``:
both only read the arguments, so the run is the one under test. Shared by the CPU and the CUDA tests.
"""

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from core.models.unet import PoseConditionedUNet
from core.pipeline.pipeline import DenoisingState

UNET_CONDITIONING = ("encoder_hidden_states", "added_time_ids", "pose_latents")


@dataclass(frozen=True)
class ExpectedDtypes:
    """The dtypes of one run dtype: latents side (latents, fusion, guidance, scheduler), UNet side, UNet timestep."""

    latents: torch.dtype
    model: torch.dtype
    timestep: torch.dtype


# float16 as the original ran it (reference §4.1 steps 6, 7, 9, 12; §5): latents, fusion weights and sums,
# guidance and timesteps all fp16. bfloat16 keeps latents, fusion and timesteps float32
# (MimicMotionPipeline.latents_dtype, _unet_timestep): 8 mantissa bits would round the fused sums and t far
# more than the original's fp16 did. The UNet's inputs and conditioning are always in the model dtype.
EXPECTED = {
    torch.float16: ExpectedDtypes(latents=torch.float16, model=torch.float16, timestep=torch.float16),
    torch.bfloat16: ExpectedDtypes(latents=torch.float32, model=torch.bfloat16, timestep=torch.float32),
    torch.float32: ExpectedDtypes(latents=torch.float32, model=torch.float32, timestep=torch.float32),
}

# uint8 frames of a 16-bit run against float32, same seed, tiny model. Measured on CPU (3 and 6 steps,
# seeds 0-2): float16 mean 0.12-0.37, max 1-4; bfloat16 mean 0.61-1.28, max 7-15 (8 mantissa bits against
# fp16's 11: about 4x the error). About 3x room for other kernels (other CPUs; cuBLAS and cuDNN, which
# also accumulate 16-bit products in float32); a broken 16-bit path (an overflowing fp16 sigma**2, a
# tensor reaching the model in the wrong dtype) lands far outside or fails outright.
FRAME_TOLERANCE = {torch.float16: {"mean": 1.0, "max": 16}, torch.bfloat16: {"mean": 3.0, "max": 48}}


@dataclass
class DtypeFlow:
    """Per UNet call and per scheduler step: argument name -> dtype (tensors only), and the UNet's devices."""

    unet_calls: list[dict[str, torch.dtype]] = field(default_factory=list)
    unet_devices: list[torch.device] = field(default_factory=list)
    steps: list[dict[str, torch.dtype]] = field(default_factory=list)

    def unet_dtypes(self) -> dict[str, set[torch.dtype]]:
        """Argument name -> every dtype it had over all UNet calls."""
        return _union(self.unet_calls)

    def step_dtypes(self) -> dict[str, set[torch.dtype]]:
        """``model_output`` and ``sample`` -> every dtype they had over all scheduler steps."""
        return _union(self.steps)


@contextmanager
def recording_dtypes(unet: PoseConditionedUNet, state: DenoisingState) -> Iterator[DtypeFlow]:
    """Record the dtypes of every UNet call and scheduler step of ``denoise(state)`` run inside the block."""
    flow = DtypeFlow()
    signature = inspect.signature(unet.forward)

    def record_unet(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        arguments = signature.bind(*args, **kwargs).arguments
        flow.unet_calls.append({name: value.dtype for name, value in arguments.items() if torch.is_tensor(value)})
        flow.unet_devices.append(arguments["sample"].device)

    scheduler = state.scheduler
    step = scheduler.step

    def record_step(model_output: torch.Tensor, timestep: Any, sample: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        flow.steps.append({"model_output": model_output.dtype, "sample": sample.dtype})
        return step(model_output, timestep, sample, *args, **kwargs)

    handle = unet.register_forward_pre_hook(record_unet, with_kwargs=True)
    scheduler.step = record_step  # type: ignore[method-assign]  # an instance attribute; the class keeps its own
    try:
        yield flow
    finally:
        handle.remove()
        del scheduler.step


def _union(records: list[dict[str, torch.dtype]]) -> dict[str, set[torch.dtype]]:
    union: dict[str, set[torch.dtype]] = {}
    for record in records:
        for name, dtype in record.items():
            union.setdefault(name, set()).add(dtype)
    return union
