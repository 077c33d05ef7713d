"""One animation in memory: reference image + driving frames -> generated frames.

The steps shared by the CLI and the worker: reference resize/crop, pose extraction and alignment,
then the pipeline. No files, no network, no queue: callers decode inputs and write outputs.
"""

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from core.errors import ConfigurationError
from core.jobs.params import JobParams, with_seed
from core.models.files import ModelFiles
from core.models.loading import load_models, resolve_device, resolve_dtype
from core.pipeline.pipeline import MimicMotionPipeline, OnStep
from core.pose.extract import extract_pose_frames
from core.pose.wholebody import WholebodyEstimator
from core.video.frames import prepare_reference_image

logger = logging.getLogger(__name__)


@dataclass
class Animator:
    """The loaded models of one process: load once, animate many times."""

    estimator: WholebodyEstimator
    pipeline: MimicMotionPipeline


@dataclass
class Animation:
    """The result of one animation."""

    frames: np.ndarray  # (N, H, W, 3) uint8, one per sampled driving frame
    pose_frames: np.ndarray  # (N + 1, H, W, 3) uint8, the reference image's own pose first
    params: JobParams  # as run, with the seed actually used
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


def load_animator(files: ModelFiles, *, device: str = "auto", dtype: str = "auto") -> Animator:
    """Load the pose estimator and the generation models onto one device."""
    try:
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
    started = time.perf_counter()
    # DWPose follows the torch device, so one process uses one GPU for everything.
    estimator = WholebodyEstimator.from_model_files(files, device=torch_device.type)
    pipeline = MimicMotionPipeline(load_models(files, torch_device, torch_dtype))
    logger.info(
        "models loaded from %s on %s in %s in %.1f s", files.root, torch_device, torch_dtype,
        time.perf_counter() - started,
    )  # fmt: skip
    return Animator(estimator=estimator, pipeline=pipeline)


def animate(
    image: np.ndarray,
    driving_frames: np.ndarray,
    params: JobParams,
    animator: Animator,
    *,
    decode_chunk_size: int = 8,
    tile_batch_size: int | None = None,
    on_step: OnStep | None = None,
) -> Animation:
    """Animate the person in ``image`` along the motion of ``driving_frames``.

    Args:
        image: (H0, W0, 3) uint8 RGB reference photo, any size; resized and cropped here (reference §4.0).
        driving_frames: (N, h, w, 3) uint8 RGB, already sampled with ``params.sample_stride``.
        on_step: called after each denoising step; may raise ``JobCanceledError``.

    Raises:
        NoPersonError: no person in the reference image or the driving frames.
    """
    params = with_seed(params)
    assert params.seed is not None
    timings: dict[str, float] = {}
    started = time.perf_counter()
    reference_image = prepare_reference_image(image, params.resolution)
    pose_frames = extract_pose_frames(reference_image, driving_frames, animator.estimator)
    timings["pose"] = time.perf_counter() - started
    output = animator.pipeline(
        reference_image,
        pose_frames,
        seed=params.seed,
        num_inference_steps=params.num_inference_steps,
        guidance_scale=params.guidance_scale,
        noise_aug_strength=params.noise_aug_strength,
        tile_size=params.tile_size,
        tile_overlap=params.tile_overlap,
        decode_chunk_size=decode_chunk_size,
        tile_batch_size=tile_batch_size,
        on_step=on_step,
    )
    timings.update(output.timings)
    return Animation(frames=output.frames, pose_frames=pose_frames, params=params, timings=timings)
