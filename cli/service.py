"""``mimicmotion serve``, ``worker`` and ``webhook-worker``: the gateway, the GPU worker and the webhook
sender, one process each.

``service/`` and ``worker/`` are imported inside the functions, so the local commands never load
FastAPI or Celery, and the GPU supervisor never loads torch.
"""

import argparse
import os

from core.contract.ascii_numbers import parse_ascii_int
from core.errors import ConfigurationError
from core.settings import Settings


def serve_command(args: argparse.Namespace, settings: Settings) -> int:
    from cli.tracing import setup_tracing
    from service.server import run

    setup_tracing(settings, "mimicmotion-gateway")
    run(settings, host=args.host, port=args.port)
    return 0


def worker_command(args: argparse.Namespace, settings: Settings) -> int:
    """One worker on the configured device, or with ``--gpus 0,1`` one pinned child process per GPU."""
    if args.model:
        # As if MIMICMOTION_WORKER_MODEL were set: the default queues follow the model, and --gpus children
        # inherit it with the rest of the environment.
        os.environ["MIMICMOTION_WORKER_MODEL"] = args.model
        settings = Settings()
    if args.gpus:
        from worker.main import supervise_gpus

        child_args = ["--log-level", args.log_level] if args.log_level else []
        # The children inherit this environment (MIMICMOTION_* included) plus their CUDA_VISIBLE_DEVICES.
        return supervise_gpus(parse_gpus(args.gpus), child_args, dict(os.environ))
    from cli.tracing import setup_tracing
    from worker.main import default_name, run_worker

    setup_tracing(settings, "mimicmotion-worker")  # in the process that runs the tasks, not the supervisor
    if args.device:
        settings = settings.model_copy(update={"device": args.device})
    return run_worker(settings, args.name or default_name(args.gpu), gpu=args.gpu)


def webhook_worker_command(args: argparse.Namespace, settings: Settings) -> int:
    from worker.webhooks import default_name, run_webhook_worker

    return run_webhook_worker(settings, args.name or default_name())


def parse_gpus(value: str) -> list[int]:
    """``"0,1"`` -> [0, 1]; refuses anything that is not distinct non-negative device numbers."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    devices = [parse_ascii_int(item, max_digits=4) for item in items]
    if not items or None in devices or len(set(items)) != len(items):
        raise ConfigurationError(f"--gpus {value!r}: give distinct device numbers separated by commas, e.g. 0,1")
    return [device for device in devices if device is not None]
