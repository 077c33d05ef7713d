"""The ``mimicmotion`` command: local jobs (animate, pose), the tiny model, the service
(serve, worker, webhook-worker, up) and its client (submit, download, delete).

Each subcommand parses its flags and calls one function from ``cli.local``, ``cli.service``,
``cli.up`` or ``cli.submit``; domain failures (``MimicMotionError``) print one line with their code
and exit with status 2, never a traceback.
"""

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from cli.params import add_job_param_flags, add_model_flag
from cli.train import add_training_commands, run_training_command
from core.contract.params import DEFAULT_MODEL, MODEL_NAMES
from core.errors import ConfigurationError, MimicMotionError
from core.log_format import configure_logging
from core.settings import Settings, get_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mimicmotion", description="MimicMotion pose-guided human animation.")
    parser.add_argument("--log-level", default=None, help="Python logging level (default: settings).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tiny = commands.add_parser("make-tiny-model", help="Write a tiny random model directory (tests, CPU demos).")
    tiny.add_argument("directory", type=Path)
    tiny.add_argument("--seed", type=int, default=0, help="Weight seed (default: 0).")
    add_model_flag(tiny)

    animate = commands.add_parser("animate", help="Animate the person in --image along --video, locally.")
    _add_input_flags(animate)
    animate.add_argument(
        "--out", type=Path, required=True, help="Output: a .mp4 file (H.264), or a PNG frame directory."
    )
    animate.add_argument(
        "--pose-out", type=Path, default=None, help="Also write the drawn pose of each output frame here."
    )
    add_model_flag(animate)
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
    add_job_param_flags(pose, only=("resolution", "sample_stride", "fps"), models=(DEFAULT_MODEL,))
    _add_service_commands(commands)
    add_training_commands(commands)
    return parser


def _add_service_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    serve = commands.add_parser("serve", help="Run the HTTP gateway.")
    serve.add_argument("--host", default=None, help="Bind address (default: MIMICMOTION_HOST).")
    serve.add_argument("--port", type=int, default=None, help="Bind port (default: MIMICMOTION_PORT).")

    worker = commands.add_parser("worker", help="Run a GPU worker (one process per GPU).")
    worker.add_argument(
        "--gpus", default=None, help="Comma-separated GPU numbers: one worker process pinned to each (e.g. 0,1)."
    )
    worker.add_argument("--name", default=None, help="Celery node name (default: gpuN@host or workerPID@host).")
    worker.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="Device (default: settings).")
    worker.add_argument(
        "--model", choices=MODEL_NAMES, default=None,
        help="The model this process serves, from MIMICMOTION_MODEL_DIR (default: MIMICMOTION_WORKER_MODEL); it "
        "consumes that model's queue unless MIMICMOTION_WORKER_QUEUES says otherwise.",
    )  # fmt: skip
    worker.add_argument("--gpu", type=int, default=None, help=argparse.SUPPRESS)  # set by --gpus for its children

    webhook_worker = commands.add_parser(
        "webhook-worker", help="Send webhooks: consume the webhooks queue and schedule retries (no GPU, no models)."
    )
    webhook_worker.add_argument("--name", default=None, help="Celery node name (default: webhooksPID@host).")

    up = commands.add_parser("up", help="Run Redis (if needed), the gateway and one worker on this machine.")
    up.add_argument("--host", default=None, help="Gateway bind address (default: MIMICMOTION_HOST).")
    up.add_argument("--port", type=int, default=None, help="Gateway port (default: MIMICMOTION_PORT).")

    _add_client_commands(commands)


def _add_client_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    submit = commands.add_parser(
        "submit", help="Submit a job to a gateway (local files are uploaded); --wait shows progress."
    )
    submit.add_argument("--image", required=True, help="Reference image: an http(s) or upload:// URL, or a local file.")
    submit.add_argument("--video", required=True, help="Driving video: an http(s) or upload:// URL, or a local file.")
    submit.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Follow the job to its end with a progress bar (default: only when --out is given); --no-wait prints "
        "the submitted job as JSON.",
    )
    submit.add_argument("--out", type=Path, default=None, help="Download the result MP4 here (implies --wait).")
    submit.add_argument("--timeout-s", type=float, default=None, help="With --wait: give up after this long.")
    # Accepted for older scripts: progress now follows the job's event stream instead of polling.
    submit.add_argument("--poll-s", type=float, default=None, help=argparse.SUPPRESS)
    _add_gateway_flags(submit)
    add_model_flag(submit)
    add_job_param_flags(submit)

    download = commands.add_parser("download", help="Download a succeeded job's result video.")
    download.add_argument("job_id", metavar="JOB_ID")
    download.add_argument("--out", type=Path, required=True, help="Where to write the MP4.")
    download.add_argument("--pose", action="store_true", help="The drawn pose video instead of the result.")
    _add_gateway_flags(download)

    delete = commands.add_parser("delete", help="Delete a job's stored data (canceling it if unfinished).")
    delete.add_argument("job_id", metavar="JOB_ID")
    _add_gateway_flags(delete)


def _add_gateway_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default=None, help="Gateway base URL (default: $MIMICMOTION_URL, else http://127.0.0.1:8000)."
    )
    parser.add_argument(
        "--api-key", default=None, help="API key, sent as Authorization: Bearer (default: $MIMICMOTION_API_KEY)."
    )


def _add_input_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", type=Path, required=True, help="Reference image of the person.")
    parser.add_argument("--video", type=Path, required=True, help="Driving video.")
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="Model directory (default: MIMICMOTION_MODEL_DIR)."
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="Device (default: settings).")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:  # a bad MIMICMOTION_* value: one line each, as for any configuration error
        for error in exc.errors():
            print(f"mimicmotion: error [{ConfigurationError.code}]: {_setting_problem(error)}", file=sys.stderr)
        return 2
    configure_logging(args.log_level or settings.log_level, settings.log_format)
    # httpx logs every request at INFO: noise under a progress bar (submit) and in the worker's fetches.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return _run(args, settings)
    except MimicMotionError as exc:
        print(f"mimicmotion: error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2


def _setting_problem(error: ErrorDetails) -> str:
    """``MIMICMOTION_X: what is wrong``; the rejected value is not shown (it may be a secret)."""
    cause = error.get("ctx", {}).get("error")
    message = str(cause) if cause is not None else error["msg"]
    variable = f"MIMICMOTION_{error['loc'][0]}".upper() if error["loc"] else ""
    named = variable.lower().removeprefix("mimicmotion_") in message.lower()
    return message if not variable or named else f"{variable}: {message}"


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command in ("make-tiny-model", "animate", "pose"):
        from cli import local

        if args.command == "make-tiny-model":
            local.make_tiny_model_command(args.directory, seed=args.seed, model=args.model or DEFAULT_MODEL)
        elif args.command == "animate":
            local.animate_command(args, settings)
        else:
            local.pose_command(args, settings)
        return 0
    if args.command in ("prepare-data", "train"):
        return run_training_command(args, settings)
    if args.command == "serve":
        from cli.service import serve_command

        return serve_command(args, settings)
    if args.command == "worker":
        from cli.service import worker_command

        return worker_command(args, settings)
    if args.command == "webhook-worker":
        from cli.service import webhook_worker_command

        return webhook_worker_command(args, settings)
    if args.command == "up":
        from cli.up import up_command

        return up_command(settings, host=args.host, port=args.port)
    return _run_client_command(args)


def _run_client_command(args: argparse.Namespace) -> int:
    try:
        from cli import submit
    except ImportError as exc:  # e.g. the gateway image, which installs the service only
        if exc.name != "mimicmotion_client":
            raise
        print(
            f"mimicmotion: error: `mimicmotion {args.command}` needs the Python client: pip install ./client",
            file=sys.stderr,
        )
        return 2
    commands = {"submit": submit.submit_command, "download": submit.download_command, "delete": submit.delete_command}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
