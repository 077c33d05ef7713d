"""JobParams: the one place that holds generation defaults and allowed ranges.

The API's validation, the CLI flags and the pipeline arguments all come from here. Names follow
the original's config (reference §10).
"""

import secrets
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

MAX_SEED = 2**63 - 1

SigmaSchedule = Literal["karras", "align_your_steps"]


class JobParams(BaseModel):
    """Generation parameters. Numbers must be JSON numbers: strings such as "128" and booleans are refused,
    and a number field also takes an integer."""

    # strict=True on every number (issue 19): a boolean is an int to Python and would be stored as 1.
    model_config = ConfigDict(extra="forbid")

    resolution: int = Field(
        default=576, strict=True, ge=128, le=1024, multiple_of=64,
        description="Short side of the output in pixels; the long side follows the 9:16 rule.",
    )
    tile_size: int = Field(
        default=72, strict=True, ge=2, le=128,
        description="Frames per denoising tile, the reference frame included (MimicMotion 1.1: 72).",
    )
    tile_overlap: int = Field(default=6, strict=True, ge=1, le=127, description="Frames shared by consecutive tiles.")
    num_inference_steps: int = Field(default=25, strict=True, ge=1, le=100, description="Denoising steps.")
    sigma_schedule: SigmaSchedule = Field(
        default="karras",
        description="Noise levels of the steps: karras (the original's) or align_your_steps (NVIDIA's schedule "
        "tuned for SVD, which keeps quality at fewer steps, e.g. 10 instead of 25).",
    )
    guidance_scale: float = Field(
        default=2.0, strict=True, ge=0.0, le=20.0,
        description="Classifier-free guidance; <= 1 skips the unconditional pass.",
    )
    noise_aug_strength: float = Field(
        default=0.0, strict=True, ge=0.0, le=1.0, description="Noise added to the reference image before VAE encoding."
    )
    sample_stride: int = Field(
        default=2,
        strict=True,
        ge=1,
        le=16,
        description="Use every n-th driving frame (times int(fps / 24) for videos of 48 fps and more).",
    )
    fps: int = Field(default=15, strict=True, ge=1, le=60, description="Frame rate of the output video.")
    seed: int | None = Field(
        default=None, strict=True, ge=0, le=MAX_SEED, description="Random seed; drawn and recorded when absent."
    )

    @field_validator("tile_overlap")
    @classmethod
    def _overlap_below_tile(cls, tile_overlap: int, info: ValidationInfo) -> int:
        tile_size = info.data.get("tile_size")
        if tile_size is not None and tile_overlap >= tile_size:
            raise ValueError(f"must be smaller than tile_size ({tile_size})")
        return tile_overlap


def with_seed(params: JobParams) -> JobParams:
    """Return ``params`` with a seed: the given one, or a fresh random one to record."""
    if params.seed is not None:
        return params
    return params.model_copy(update={"seed": secrets.randbelow(2**32)})
