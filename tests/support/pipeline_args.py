"""Every argument of a MimicMotionPipeline stage, explicit: the one source's defaults, then a test's overrides.

The pipeline has no defaults of its own (``JobParams`` and ``Settings.decode_chunk_size`` hold them), so
tests name only what they change and get the rest from there.
"""

from typing import Any

from core.contract.params import JobParams
from core.settings import Settings

# The field's default, not Settings(): a test must not pick up a MIMICMOTION_* variable from the shell.
DECODE_CHUNK_SIZE: int = Settings.model_fields["decode_chunk_size"].default


def denoising_args(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments for ``prepare_denoising``: JobParams' defaults, then ``overrides`` (``seed`` too)."""
    params = JobParams()
    return {
        "num_inference_steps": params.num_inference_steps,
        "guidance_scale": params.guidance_scale,
        "noise_aug_strength": params.noise_aug_strength,
        "tile_size": params.tile_size,
        "tile_overlap": params.tile_overlap,
        "sigma_schedule": params.sigma_schedule,
        **overrides,
    }


def pipeline_args(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments for ``MimicMotionPipeline.__call__``: ``denoising_args`` and the decode chunk size."""
    return {"decode_chunk_size": DECODE_CHUNK_SIZE, **denoising_args(**overrides)}
