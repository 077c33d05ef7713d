"""Local (server-less) commands: build inputs, run core, write files."""

import argparse
import logging
import time
from pathlib import Path

from cli.params import job_params_from_args
from cli.progress import progress_bar
from core.errors import ModelFilesError
from core.models.files import ModelFiles, resolve_model_files
from core.settings import Settings

logger = logging.getLogger(__name__)


def make_tiny_model_command(directory: Path, *, seed: int) -> None:
    from core.models.tiny import make_tiny_model

    make_tiny_model(directory, seed=seed)
    print(f"tiny model written to {directory}")


def animate_command(args: argparse.Namespace, settings: Settings) -> None:
    from core.animate import animate, load_animator
    from core.video.decode import read_image, read_video_frames
    from core.video.encode import write_frames

    params = job_params_from_args(args)
    files = _model_files(args, settings)
    started = time.perf_counter()
    image = read_image(args.image)
    video = read_video_frames(args.video, sample_stride=params.sample_stride)
    read_s = time.perf_counter() - started
    animator = load_animator(files, device=args.device or settings.device, dtype=args.dtype or settings.dtype)
    with progress_bar(params.num_inference_steps, "denoising") as on_step:
        animation = animate(
            image, video.frames, params, animator, decode_chunk_size=settings.decode_chunk_size, on_step=on_step
        )
    encode_started = time.perf_counter()
    write_frames(animation.frames, args.out, fps=params.fps)
    if args.pose_out is not None:
        write_frames(animation.pose_frames, args.pose_out, fps=params.fps)
    timings = {"read": read_s, **animation.timings, "write": time.perf_counter() - encode_started}
    num_frames, height, width = animation.frames.shape[:3]
    print(
        f"{num_frames} frames at {width}x{height}, seed {animation.params.seed} -> {args.out} "
        f"({', '.join(f'{stage} {seconds:.1f} s' for stage, seconds in timings.items())})"
    )


def pose_command(args: argparse.Namespace, settings: Settings) -> None:
    from core.pose.extract import extract_pose_frames
    from core.pose.wholebody import WholebodyEstimator
    from core.video.decode import read_image, read_video_frames
    from core.video.encode import write_frames
    from core.video.frames import prepare_reference_image

    params = job_params_from_args(args)
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


def _model_files(args: argparse.Namespace, settings: Settings) -> ModelFiles:
    model_dir = args.model_dir or settings.model_dir
    if model_dir is None:
        raise ModelFilesError(
            "no model directory: pass --model-dir or set MIMICMOTION_MODEL_DIR "
            "(`mimicmotion make-tiny-model DIR` writes a tiny one for trying things out)"
        )
    return resolve_model_files(model_dir)
