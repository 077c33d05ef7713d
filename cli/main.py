"""The ``mimicmotion`` command: local jobs (animate, pose), the tiny model, and (later) the service.

Each subcommand parses its flags and calls one function from ``cli.local``; domain failures
(``MimicMotionError``) print one line with their code and exit with status 2, never a traceback.
"""

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from cli.params import add_job_param_flags
from core.errors import MimicMotionError
from core.settings import get_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mimicmotion", description="MimicMotion pose-guided human animation."
    )
    parser.add_argument("--log-level", default=None, help="Python logging level (default: settings).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tiny = commands.add_parser(
        "make-tiny-model", help="Write a tiny random model directory (tests, CPU demos)."
    )
    tiny.add_argument("directory", type=Path)
    tiny.add_argument("--seed", type=int, default=0, help="Weight seed (default: 0).")

    animate = commands.add_parser("animate", help="Animate the person in --image along --video, locally.")
    _add_input_flags(animate)
    animate.add_argument(
        "--out", type=Path, required=True, help="Output: a .mp4 file (H.264), or a PNG frame directory."
    )
    animate.add_argument("--pose-out", type=Path, default=None, help="Also write the drawn pose frames here.")
    animate.add_argument(
        "--dtype",
        choices=("auto", "float32", "float16", "bfloat16"),
        default=None,
        help="Model dtype (default: settings; auto is bfloat16 on CUDA, float32 on CPU).",
    )
    add_job_param_flags(animate)

    pose = commands.add_parser(
        "pose", help="Write the aligned, drawn pose frames exactly as the pipeline consumes them."
    )
    _add_input_flags(pose)
    pose.add_argument("--out", type=Path, required=True, help="Output: a PNG directory, or a .mp4 file.")
    add_job_param_flags(pose, only=("resolution", "sample_stride", "fps"))
    return parser


def _add_input_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", type=Path, required=True, help="Reference image of the person.")
    parser.add_argument("--video", type=Path, required=True, help="Driving video.")
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="Model directory (default: MIMICMOTION_MODEL_DIR)."
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default=None, help="Device (default: settings)."
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    logging.basicConfig(
        level=(args.log_level or settings.log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from cli import local

    try:
        if args.command == "make-tiny-model":
            local.make_tiny_model_command(args.directory, seed=args.seed)
        elif args.command == "animate":
            local.animate_command(args, settings)
        elif args.command == "pose":
            local.pose_command(args, settings)
    except MimicMotionError as exc:
        print(f"mimicmotion: error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
