"""One animation in memory: reference image + driving frames -> generated frames.

The steps shared by the CLI and the worker: reference resize/crop, pose extraction and alignment,
then the pipeline. No files, no network, no queue: callers decode inputs and write outputs.
"""

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from core.backends.base import GenerationHooks
from core.contract.params import MIMICMOTION, JobParams, with_seed
from core.contract.stages import Stage, StageTimer
from core.errors import ConfigurationError
from core.models.files import ModelFiles
from core.models.loading import load_models, resolve_device, resolve_dtype
from core.pipeline.performance import PerformanceOptions
from core.pipeline.pipeline import MimicMotionPipeline, OnStep
from core.pose.extract import PoseEstimator, estimate_poses, render_pose_frames
from core.pose.records import Pose
from core.pose.wholebody import WholebodyEstimator
from core.video.frames import prepare_reference_image, target_size

logger = logging.getLogger(__name__)


@dataclass
class Animator:
    """The loaded MimicMotion models of one process: load once, animate many times (the backend seam's
    ``LoadedModel``, core.backends.base)."""

    estimator: WholebodyEstimator
    pipeline: MimicMotionPipeline
    name: str = MIMICMOTION
    supports_checkpoints: bool = True  # Euler steps add no noise: latents + step are the whole state

    @property
    def dtype(self) -> torch.dtype:
        return self.pipeline.models.dtype

    @property
    def device(self) -> torch.device:
        return self.pipeline.models.device

    def synchronize(self) -> None:
        self.pipeline.synchronize()

    def prepare(
        self,
        image: np.ndarray,
        driving_frames: np.ndarray,
        params: JobParams,
        *,
        driving_poses: list[Pose] | None = None,
    ) -> "PosedInputs":
        return prepare_poses(image, driving_frames, params, self.estimator, driving_poses=driving_poses)

    def generate(self, prepared: "PosedInputs", params: JobParams, hooks: GenerationHooks) -> np.ndarray:
        return generate(self, prepared, params, hooks)


@dataclass
class Animation:
    """The result of one animation."""

    frames: np.ndarray  # (N, H, W, 3) uint8, one per sampled driving frame
    pose_frames: np.ndarray  # (N + 1, H, W, 3) uint8, the reference image's own pose first
    params: JobParams  # as run, with the seed actually used
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


@dataclass
class PosedInputs:
    """A job's inputs ready for the pipeline: the first half of ``animate``, which may run ahead."""

    reference_image: np.ndarray  # (H, W, 3) uint8, resized and cropped to the job's resolution
    pose_frames: np.ndarray  # (N + 1, H, W, 3) uint8, the reference image's own pose first
    timings: dict[str, float]  # {"pose": seconds}, from the StageTimer that timed it
    driving_poses: list[Pose] = field(default_factory=list)  # one per driving frame, as detected (not aligned)

    @property
    def pose_video_frames(self) -> np.ndarray:
        """(N, H, W, 3): the pose of each output frame, without the reference image's own."""
        return self.pose_frames[1:]


def load_animator(
    files: ModelFiles, *, device: str = "auto", dtype: str = "auto", options: PerformanceOptions | None = None
) -> Animator:
    """Load the pose estimator and the generation models onto one device."""
    try:
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
    started = time.perf_counter()
    # DWPose follows the torch device, so one process uses one GPU for everything.
    estimator = WholebodyEstimator.from_model_files(files, device=torch_device.type)
    pipeline = MimicMotionPipeline(load_models(files, torch_device, torch_dtype), options)
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
    decode_chunk_size: int,
    tiles_per_call: int | None = None,
    on_step: OnStep | None = None,
    posed: PosedInputs | None = None,
) -> Animation:
    """Animate the person in ``image`` along the motion of ``driving_frames``.

    Args:
        image: (H0, W0, 3) uint8 RGB reference photo, any size; resized and cropped here (reference §4.0).
        driving_frames: (N, h, w, 3) uint8 RGB, already sampled with ``params.sample_stride``.
        decode_chunk_size: frames per VAE decoder chunk (``Settings.decode_chunk_size``).
        on_step: called after each denoising step; may raise ``JobCanceledError``.
        posed: ``prepare_poses(image, driving_frames, params, ...)`` computed ahead (the worker's
            prefetch); None computes it here.

    Raises:
        NoPersonError: no person in the reference image or the driving frames.
    """
    params = with_seed(params)
    assert params.seed is not None
    if posed is None:
        posed = prepare_poses(image, driving_frames, params, animator.estimator)
    output = animator.pipeline(
        posed.reference_image,
        posed.pose_frames,
        seed=params.seed,
        num_inference_steps=params.num_inference_steps,
        guidance_scale=params.guidance_scale,
        noise_aug_strength=params.noise_aug_strength,
        tile_size=params.tile_size,
        tile_overlap=params.tile_overlap,
        sigma_schedule=params.sigma_schedule,
        decode_chunk_size=decode_chunk_size,
        tiles_per_call=tiles_per_call,
        on_step=on_step,
    )
    timings = {**posed.timings, **output.timings}
    return Animation(frames=output.frames, pose_frames=posed.pose_frames, params=params, timings=timings)


def prepare_poses(
    image: np.ndarray,
    driving_frames: np.ndarray,
    params: JobParams,
    estimator: PoseEstimator,
    *,
    driving_poses: list[Pose] | None = None,
) -> PosedInputs:
    """Resize and crop the reference image, then extract, align and draw the poses (reference §4.0).

    Args:
        driving_poses: the driving frames' poses as an earlier run detected them (``PosedInputs.driving_poses``,
            the worker's pose cache); None detects them. The reference image is detected either way.

    Raises:
        NoPersonError: no person in the reference image or the driving frames.
    """
    timer = StageTimer()  # DWPose runs on onnxruntime, synchronous: nothing queued to wait for
    with timer.stage(Stage.pose):
        reference_image = prepare_reference_image(image, params.resolution)
        poses = estimate_poses(reference_image, driving_frames, estimator, driving_poses=driving_poses)
        pose_frames = render_pose_frames(poses)
    return PosedInputs(reference_image, pose_frames, timer.timings, poses.driving)


def generate(animator: Animator, prepared: PosedInputs, params: JobParams, hooks: GenerationHooks) -> np.ndarray:
    """A job's GPU stages: conditioning (CLIP, VAE, PoseNet, the noise), tiled denoising (resumed from a
    checkpoint of this very job when ``hooks`` have one), VAE decoding: (N, H, W, 3) uint8, the reference frame
    dropped. The stages of ``animate`` with the job run's timer, progress, previews and checkpoints."""
    assert params.seed is not None
    pipeline, timer = animator.pipeline, hooks.timer
    on_device = pipeline.synchronize  # a stage's queued device work ends inside it
    hooks.start_stage(Stage.conditioning)
    with timer.stage(Stage.conditioning, synchronize=on_device):
        state = pipeline.prepare_denoising(
            prepared.reference_image, prepared.pose_frames, seed=params.seed,
            num_inference_steps=params.num_inference_steps, guidance_scale=params.guidance_scale,
            noise_aug_strength=params.noise_aug_strength, tile_size=params.tile_size,
            tile_overlap=params.tile_overlap, sigma_schedule=params.sigma_schedule,
        )  # fmt: skip
    checkpoints, steps = hooks.checkpoints, params.num_inference_steps
    resume = checkpoints.load(state.latents.shape, steps) if checkpoints is not None else None
    if resume is not None:
        hooks.on_resume(resume[0], steps)
    with timer.stage(Stage.denoising, synchronize=on_device):
        try:
            latents = pipeline.denoise(
                state, on_step=hooks.on_step, on_estimate=hooks.on_estimate,
                on_latents=checkpoints.on_latents if checkpoints is not None else None, resume=resume,
            )  # fmt: skip
        finally:
            if checkpoints is not None:
                checkpoints.stop()
    hooks.start_stage(Stage.decoding)
    with timer.stage(Stage.decoding, synchronize=on_device):
        return pipeline.decode(latents, decode_chunk_size=hooks.decode_chunk_size)


_LONG_VIDEO_TILES = 64  # enough tiles that only memory bounds the tiles per call


def warm_up(animator: Animator, params: JobParams, tiles_per_call: int | None = None) -> float:
    """Denoise at ``params``' size once per tile-group size a job can use (one step each); seconds.

    With ``compile_unet`` the worker calls this at start. Compiled blocks keep one graph per input
    shape, and a job's UNet calls hold 1 to K tiles (K from free memory; the last group of a job is
    often smaller), so each size is compiled here instead of in the first jobs. Portrait 9:16, the
    shape most jobs have; other sizes compile on first use. Nothing is decoded: only the UNet compiles.

    Args:
        tiles_per_call: K; None takes what the pipeline would choose for a long video at this size.
    """
    started = time.perf_counter()
    pipeline = animator.pipeline
    height, width = target_size(16, 9, params.resolution)
    latent_size = (height // pipeline.vae_scale_factor, width // pipeline.vae_scale_factor)
    if tiles_per_call is None:
        tiles_per_call = pipeline.plan_tiles_per_call(
            _LONG_VIDEO_TILES, params.tile_size, latent_size, params.guidance_scale > 1.0
        )
    blank = np.zeros((height, width, 3), dtype=np.uint8)
    for num_tiles in range(1, tiles_per_call + 1):
        # Exactly num_tiles regular tiles (reference §5), all in one UNet call.
        num_frames = params.tile_size + (num_tiles - 1) * (params.tile_size - params.tile_overlap)
        state = pipeline.prepare_denoising(
            blank, np.zeros((num_frames, height, width, 3), np.uint8), seed=0, num_inference_steps=1,
            guidance_scale=params.guidance_scale, noise_aug_strength=params.noise_aug_strength,
            tile_size=params.tile_size, tile_overlap=params.tile_overlap, sigma_schedule=params.sigma_schedule,
            tiles_per_call=num_tiles,
        )  # fmt: skip
        pipeline.denoise(state)
    return time.perf_counter() - started
