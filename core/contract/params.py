"""JobParams: the one place that holds generation defaults and allowed ranges.

The API's validation, the CLI flags and the pipeline arguments all come from here. Names follow
the original's config (reference §10).
"""

import secrets
from typing import Final, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

MAX_SEED = 2**63 - 1

SigmaSchedule = Literal["karras", "align_your_steps"]


class JobParams(BaseModel):
    """Generation parameters. Numbers must be JSON numbers: strings such as "128" and booleans are refused,
    and a number field also takes an integer."""

    # strict=True on every number (issue 19): a boolean is an int to Python and would be stored as 1.
    model_config = ConfigDict(extra="forbid")

    resolution: int = Field(
        default=576,
        strict=True,
        ge=128,
        le=1024,
        multiple_of=64,
        description="Short side of the output in pixels; the long side follows the 9:16 rule.",
    )
    tile_size: int = Field(
        default=72,
        strict=True,
        ge=2,
        le=128,
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
        default=2.0,
        strict=True,
        ge=0.0,
        le=20.0,
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


def with_seed(params: "P") -> "P":
    """Return ``params`` with a seed: the given one, or a fresh random one to record."""
    if params.seed is not None:
        return params
    return cast("P", params.model_copy(update={"seed": secrets.randbelow(2**32)}))


# --- Models: each has its own parameters; a job names its model (DESIGN.md, "Models") ---------------

MIMICMOTION: Final = "mimicmotion-1.1"
WAN_ANIMATE: Final = "wan2.2-animate"
DEFAULT_MODEL: Final = MIMICMOTION
ModelName = Literal["mimicmotion-1.1", "wan2.2-animate"]

WAN_DEFAULT_PROMPT = "视频中的人在做动作"  # "the person in the video is doing actions", the original's only prompt
WanResolution = Literal["480p", "720p"]
WAN_RESOLUTION_AREAS: dict[str, tuple[int, int]] = {"480p": (832, 480), "720p": (1280, 720)}  # (W, H) of the area


class WanAnimateParams(BaseModel):
    """Wan2.2-Animate-14B's parameters, named as diffusers' ``WanAnimatePipeline`` names them (wan-animate-reference
    §2); numbers are strict JSON numbers as in ``JobParams``."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["animate"] = Field(
        default="animate",
        description="animate: the reference person performs the driving motion on the reference background. (replace, "
        "which puts the person into the driving video, needs SAM2 person masks, which this service does not make.)",
    )
    prompt: str = Field(
        default=WAN_DEFAULT_PROMPT, min_length=1, max_length=2000,
        description="Text condition; the original always uses this one.",
    )  # fmt: skip
    negative_prompt: str = Field(
        default="", max_length=2000, description="Used only with guidance_scale > 1 (the unconditional pass)."
    )
    resolution: WanResolution = Field(
        default="720p",
        description="Output area: 720p is 1280x720 pixels' worth, 480p 832x480; the reference image's aspect ratio "
        "is kept, both sides multiples of 16.",
    )
    segment_frame_length: int = Field(
        default=77, strict=True, ge=5, le=161,
        description="Frames generated per segment (4n+1); longer videos run in segments that overlap by "
        "prev_segment_conditioning_frames.",
    )  # fmt: skip
    prev_segment_conditioning_frames: Literal[1, 5] = Field(
        default=1, description="Frames carried from one segment into the next (5: more consistent, more memory)."
    )
    retarget: bool = Field(
        default=False,
        strict=True,
        description="Rescale the driving skeleton's limbs to the reference body before drawing it (the reference's "
        "retargeting; best with front-facing, full-body poses in both).",
    )
    num_inference_steps: int = Field(default=20, strict=True, ge=1, le=100, description="Denoising steps per segment.")
    guidance_scale: float = Field(
        default=1.0, strict=True, ge=0.0, le=20.0,
        description="Classifier-free guidance on the face condition; <= 1 skips the unconditional pass "
        "(5-7 when used).",
    )  # fmt: skip
    fps: int = Field(
        default=30, strict=True, ge=1, le=60,
        description="The driving video is sampled at this rate, and the output plays at it.",
    )  # fmt: skip
    seed: int | None = Field(
        default=None, strict=True, ge=0, le=MAX_SEED, description="Random seed; drawn and recorded when absent."
    )

    @field_validator("prev_segment_conditioning_frames", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: object) -> object:
        if isinstance(value, bool):  # True == 1 to Python; a JSON boolean is not a frame count
            raise ValueError("must be the number 1 or 5")
        return value

    @field_validator("segment_frame_length")
    @classmethod
    def _four_n_plus_one(cls, length: int) -> int:
        if length % 4 != 1:
            raise ValueError(f"must be 4n+1 (e.g. 77 or 81), got {length}")
        return length


ModelParams = JobParams | WanAnimateParams
MODEL_NAMES: tuple[str, ...] = (MIMICMOTION, WAN_ANIMATE)
P = TypeVar("P", bound=JobParams | WanAnimateParams)
PARAMS_BY_MODEL: dict[str, type[JobParams] | type[WanAnimateParams]] = {
    MIMICMOTION: JobParams,
    WAN_ANIMATE: WanAnimateParams,
}
