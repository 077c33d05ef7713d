"""Loading Wan2.2-Animate and generating with diffusers' ``WanAnimatePipeline`` (wan-animate-reference §2).

Shapes: N driving frames, (H, W) the reference image's size. The only random draws are the pipeline's
noise, one tensor per segment, from a CPU generator: the same seed gives the same noise on every device.
"""

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers.pipelines.wan.pipeline_wan_animate import WanAnimatePipeline
from PIL import Image

from core.backends.wan_animate.files import WanModelFiles
from core.backends.wan_animate.inputs import WanInputs
from core.contract.params import WanAnimateParams
from core.pose.wholebody import WholebodyEstimator

logger = logging.getLogger(__name__)

# What a generation holds on the GPU besides the weights, at 720p with 77-frame segments: transformer
# activations (75,600 tokens x 5120 x bf16 is 0.8 GB per tensor, the FFN's 13,824-wide ones 2 GB) and the
# VAE's fp32 encode and decode of a whole segment. A margin rather than a measurement (§7, question 3).
WORKING_SET_BYTES = 24 * 2**30
OFFLOAD_BLOCKS_PER_GROUP = 1  # block-level offload moves one transformer block at a time


@dataclass
class WanAnimator:
    """The loaded model: DWPose for the poses, the diffusers pipeline for the frames."""

    estimator: WholebodyEstimator
    pipeline: WanAnimatePipeline
    device: torch.device
    group_offload: bool  # whether the transformer and text encoder stream their blocks from CPU memory


def needs_group_offload(free_bytes: int, weight_bytes: int, working_bytes: int = WORKING_SET_BYTES) -> bool:
    """Whether the weights and a generation's working set do not both fit in ``free_bytes`` of GPU memory."""
    return free_bytes < weight_bytes + working_bytes


def load_wan_animator(files: WanModelFiles, *, device: torch.device | str, dtype: torch.dtype) -> WanAnimator:
    """Load DWPose and the pipeline from ``files`` onto ``device``.

    On CUDA the VAE stays float32 whatever ``dtype`` is (the diffusers docs' advice), and the two large
    models (transformer, text encoder) are group-offloaded block by block, with a CUDA stream, when free
    GPU memory is below the weights plus ``WORKING_SET_BYTES``. On CPU pass float32.
    """
    device = torch.device(device)
    estimator = WholebodyEstimator.from_model_files(files, "cuda" if device.type == "cuda" else "cpu")
    dtypes: Any = {"vae": torch.float32, "default": dtype} if device.type == "cuda" else dtype
    pipeline = WanAnimatePipeline.from_pretrained(files.root, dtype=dtypes)
    offload = False
    if device.type == "cuda":
        free_bytes, _ = torch.cuda.mem_get_info(device)
        offload = needs_group_offload(free_bytes, _weight_bytes(pipeline))
    if offload:
        logger.info("Wan-Animate: group offloading the transformer and text encoder (free GPU memory is short)")
        for name in ("transformer", "text_encoder"):
            _group_offload(getattr(pipeline, name), device)
        for name in ("vae", "image_encoder"):
            getattr(pipeline, name).to(device)
    else:
        pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    return WanAnimator(estimator=estimator, pipeline=pipeline, device=device, group_offload=offload)


def _weight_bytes(pipeline: WanAnimatePipeline) -> int:
    modules = (pipeline.transformer, pipeline.text_encoder, pipeline.image_encoder, pipeline.vae)
    return sum(p.numel() * p.element_size() for module in modules for p in module.parameters())


def _group_offload(module: Any, device: torch.device) -> None:
    from diffusers.hooks import apply_group_offloading

    apply_group_offloading(
        module, onload_device=device, offload_type="block_level",
        num_blocks_per_group=OFFLOAD_BLOCKS_PER_GROUP, use_stream=True,
    )  # fmt: skip


def num_segments(num_frames: int, segment_frame_length: int, prev_segment_conditioning_frames: int) -> int:
    """Segments the pipeline runs for ``num_frames`` (§2 "Segmentation"): N is padded to P + k * (L - P)
    frames with the smallest k >= 1 (77 frames at L=77, P=1: 1 segment; 78: 2; 300: 4)."""
    effective = segment_frame_length - prev_segment_conditioning_frames
    return max(1, math.ceil((num_frames - prev_segment_conditioning_frames) / effective))


def generate_wan(
    animator: WanAnimator,
    inputs: WanInputs,
    params: WanAnimateParams,
    *,
    on_step: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB frames, one per driving frame, at the reference image's size.

    ``on_step(step, total)`` runs after every denoising step: step counts 1..total over all segments
    (total = segments x num_inference_steps). An exception it raises (e.g. ``JobCanceledError``) leaves
    through the pipeline and stops the generation at once.

    A one-frame driving video (N <= P, where the pipeline cannot form a segment) is generated as that frame
    twice and cut back to one: the frame a user asked for, not an error.
    """
    pose_video = [Image.fromarray(frame) for frame in inputs.pose_frames]
    face_video = [Image.fromarray(frame) for frame in inputs.face_frames]
    num_frames = len(pose_video)
    prev = params.prev_segment_conditioning_frames
    if num_frames <= prev:  # the pipeline raises on zero segments (§2): pad by repeating the last frame
        pose_video += [pose_video[-1]] * (prev + 1 - num_frames)
        face_video += [face_video[-1]] * (prev + 1 - num_frames)
    height, width = inputs.reference_image.shape[:2]
    steps = params.num_inference_steps
    total = num_segments(len(pose_video), params.segment_frame_length, prev) * steps
    seen = 0

    def step_end(pipeline: Any, i: int, t: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        nonlocal seen
        seen += 1  # the pipeline's i restarts every segment (§2 "Progress and cancel")
        if on_step is not None:
            on_step(seen, total)
        return callback_kwargs

    seed = params.seed if params.seed is not None else 0
    output = animator.pipeline(
        image=Image.fromarray(inputs.reference_image),
        pose_video=pose_video,
        face_video=face_video,
        prompt=params.prompt,
        negative_prompt=params.negative_prompt if params.guidance_scale > 1 else None,
        height=height,
        width=width,
        segment_frame_length=params.segment_frame_length,
        num_inference_steps=steps,
        mode=params.mode,
        prev_segment_conditioning_frames=prev,
        guidance_scale=params.guidance_scale,
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type="np",
        callback_on_step_end=step_end,
    )
    video = output.frames[0][:num_frames]  # (N, H, W, 3) float32 in [0, 1]
    return to_uint8(video)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8 as diffusers' ``numpy_to_pil``: ``(x * 255).round()`` (half to even) in the
    frames' own dtype; the pipeline has already clamped to [0, 1]."""
    return (frames * 255).round().astype(np.uint8)
