"""Local (server-less) commands: build inputs, run core, write files."""

import argparse
import logging
import time
from pathlib import Path

from cli.params import job_params_from_args
from cli.progress import progress_bar
from core.contract.params import DEFAULT_MODEL, JobParams, with_seed
from core.errors import ModelFilesError
from core.models.files import ModelFiles, resolve_model_files
from core.settings import Settings

logger = logging.getLogger(__name__)


def make_tiny_model_command(directory: Path, *, seed: int, model: str = DEFAULT_MODEL) -> None:
    from core.backends.registry import backend_for

    backend_for(model).make_tiny_model(directory, seed=seed)
    print(f"tiny {model} model written to {directory}")


def animate_command(args: argparse.Namespace, settings: Settings) -> None:
    """The worker's stages on one machine, for any model: poses, the model's GPU stages, the video written."""
    from core.backends.base import GenerationHooks, LoadOptions
    from core.backends.registry import backend_for
    from core.contract.stages import StageTimer
    from core.video.decode import read_image, read_video_frames
    from core.video.encode import write_frames
    from worker.models_cache import performance_options

    model_name = args.model or DEFAULT_MODEL
    backend = backend_for(model_name)
    params = with_seed(job_params_from_args(args, model_name))
    files = backend.resolve_files(_model_dir(args, settings))
    started = time.perf_counter()
    image = read_image(args.image)
    sampling = backend.frame_sampling(params)
    video = read_video_frames(args.video, sample_stride=sampling.sample_stride, target_fps=sampling.target_fps)
    read_s = time.perf_counter() - started
    options = LoadOptions(
        device=args.device or settings.device, dtype=args.dtype or settings.dtype,
        performance=performance_options(settings),
    )  # fmt: skip
    model = backend.load(files, options)
    prepared = model.prepare(image, video.frames, params)
    timer = StageTimer(synchronize=model.synchronize)
    with progress_bar(params.num_inference_steps, "denoising") as on_step:
        hooks = GenerationHooks(
            timer=timer, start_stage=lambda stage: None, on_step=on_step, decode_chunk_size=settings.decode_chunk_size
        )
        frames = model.generate(prepared, params, hooks)
    encode_started = time.perf_counter()
    write_frames(frames, args.out, fps=params.fps)
    if args.pose_out is not None:
        write_frames(prepared.pose_video_frames, args.pose_out, fps=params.fps)
    timings = {"read": read_s, **prepared.timings, **timer.timings, "write": time.perf_counter() - encode_started}
    num_frames, height, width = frames.shape[:3]
    print(
        f"{num_frames} frames at {width}x{height}, seed {params.seed}, {model_name} -> {args.out} "
        f"({', '.join(f'{stage} {seconds:.1f} s' for stage, seconds in timings.items())})"
    )


def pose_command(args: argparse.Namespace, settings: Settings) -> None:
    from core.pose.extract import extract_pose_frames
    from core.pose.wholebody import WholebodyEstimator
    from core.video.decode import read_image, read_video_frames
    from core.video.encode import write_frames
    from core.video.frames import prepare_reference_image

    params = job_params_from_args(args, DEFAULT_MODEL)
    assert isinstance(params, JobParams)
    files = _model_files(args, settings)
    started = time.perf_counter()
    reference_image = prepare_reference_image(read_image(args.image), params.resolution)
    video = read_video_frames(args.video, sample_stride=params.sample_stride)
    estimator = WholebodyEstimator.from_model_files(files, device=args.device or settings.device)
    pose_frames = extract_pose_frames(reference_image, video.frames, estimator)
    write_frames(pose_frames, args.out, fps=params.fps)
    height, width = reference_image.shape[:2]
    print(
        f"{len(pose_frames)} pose frames ({width}x{height}, reference pose first) from "
        f"{video.info.num_frames} video frames at stride {video.stride} -> {args.out} "
        f"in {time.perf_counter() - started:.1f} s"
    )


def _model_dir(args: argparse.Namespace, settings: Settings) -> Path:
    model_dir = args.model_dir or settings.model_dir
    if model_dir is None:
        raise ModelFilesError(
            "no model directory: pass --model-dir or set MIMICMOTION_MODEL_DIR "
            "(`mimicmotion make-tiny-model DIR` writes a tiny one for trying things out)"
        )
    return Path(model_dir)


def _model_files(args: argparse.Namespace, settings: Settings) -> ModelFiles:
    return resolve_model_files(_model_dir(args, settings))
