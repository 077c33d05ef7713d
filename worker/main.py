"""Worker entry points: one Celery worker in this process, or one child process per GPU.

``run_worker`` loads the models before the Celery worker starts consuming, so the first job
finds them warm. ``supervise_gpus`` pins each child to its GPU with CUDA_VISIBLE_DEVICES, set in
the child's environment before its interpreter (and torch) starts.
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from types import FrameType

from celery.signals import worker_shutting_down

from core.contract.queues import ANIMATE_TASK
from core.contract.records import utc_now
from core.jobs.broker import broker_queue_length
from core.jobs.heartbeats import WorkerHeartbeats
from core.jobs.retention import LocalResultsRetention
from core.jobs.uploads import Uploads, sweep_expired_uploads
from core.log_format import bind_log_context
from core.settings import Settings
from core.storage import LocalStorage
from worker import models_cache
from worker.app import create_celery
from worker.heartbeat import CONSUMER_STALLED_EXIT_CODE, Heartbeat
from worker.metrics import start_worker_metrics
from worker.reaper import Reaper

logger = logging.getLogger(__name__)


def default_name(gpu: int | None = None) -> str:
    """Celery node name: ``gpu0@host`` for a pinned worker, ``worker<pid>@host`` otherwise (unique per process)."""
    prefix = f"gpu{gpu}" if gpu is not None else f"worker{os.getpid()}"
    return f"{prefix}@{socket.gethostname()}"


def run_worker(settings: Settings, name: str, *, gpu: int | None = None) -> int:
    """Load the models, announce the worker with a heartbeat, consume the GPU queue until shut down."""
    bind_log_context(worker=name)  # on every log line of this process
    load_started = time.monotonic()
    loaded = models_cache.load(settings, name)
    model_load_s = time.monotonic() - load_started
    queues = settings.worker_queues
    info = {
        "device": str(loaded.animator.device),
        "model": loaded.animator.name,
        "gpu": gpu,
        "tiny_model": loaded.files.is_tiny,
        "model_dir": str(loaded.files.root),
        "pid": os.getpid(),
        "queues": queues,
        "started_at": utc_now().isoformat(),
    }
    heartbeat = Heartbeat(WorkerHeartbeats(loaded.store.db), name, info)
    app = create_celery(settings)
    celery_worker = app.Worker(
        hostname=name, pool_cls="solo", concurrency=1, queues=queues,
        without_gossip=True, without_mingle=True, loglevel=settings.log_level.upper(),
    )  # fmt: skip
    reaper = Reaper(
        loaded.store,
        lambda job_id, queue: app.send_task(ANIMATE_TASK, args=[job_id], queue=queue),
        max_attempts=settings.max_job_attempts,
        interval_s=settings.reaper_interval_s,
        broker_queue_length=lambda queue: broker_queue_length(loaded.store.db.client, queue),
        stranded_after_s=2 * settings.lease_s,
        sweeps=[lambda: sweep_expired_uploads(Uploads(loaded.store.db), loaded.storage)]
        + ([LocalResultsRetention(loaded.store, loaded.storage)] if isinstance(loaded.storage, LocalStorage) else []),
    )
    metrics_port = settings.worker_metrics_port + (gpu or 0) if settings.worker_metrics_port else 0
    metrics = start_worker_metrics(metrics_port, name, info, loaded.store, model_load_s=model_load_s)
    if metrics is not None:
        loaded.on_job_end = metrics.job_ended
        loaded.on_checkpoints = metrics.checkpoints_ended
        if loaded.pose_cache is not None:
            loaded.pose_cache.on_lookup = metrics.pose_cache_looked_up
    # SIGTERM/SIGINT: the running job gets shutdown_grace_s to finish, then goes back to the queue.
    worker_shutting_down.connect(lambda **_: loaded.stop.request(), weak=False)
    heartbeat.start()
    reaper.start()
    logger.info("worker %s: ready on %s (queues %s)", name, info["device"], ",".join(queues))
    try:
        celery_worker.start()  # returns after a warm shutdown (SIGTERM, SIGINT): the running job finishes first
    finally:
        # The last job's result may still be uploading: finish it (a job past the grace is left to its lease).
        if loaded.finisher is not None:
            loaded.finisher.drain(timeout_s=settings.shutdown_grace_s)
        reaper.stop()
        heartbeat.stop()
    return int(celery_worker.exitcode or 0)


def supervise_gpus(
    gpus: Sequence[int],
    child_args: Sequence[str],
    env: Mapping[str, str],
    *,
    command_for: Callable[[int], list[str]] | None = None,
    poll_s: float = 0.5,
) -> int:
    """Start ``mimicmotion worker --gpu N`` per GPU, forward SIGTERM/SIGINT, return when all have exited.

    A child that exits with CONSUMER_STALLED_EXIT_CODE (its consumer stalled, see worker/heartbeat.py),
    or dies of a signal this supervisor did not forward (the OOM killer, a crash), is started again,
    so its GPU keeps serving. Any other exit is final: a configuration or model error would only
    repeat. Returns the largest exit status (a signal counts as its number).

    Args:
        child_args: extra flags for every child (e.g. ``--log-level``).
        env: the base environment for the children; CUDA_VISIBLE_DEVICES is set per child.
        command_for: the child's command line for a GPU (tests run stand-ins).
    """
    command_for = command_for or (
        lambda gpu: [sys.executable, "-m", "cli.main", *child_args, "worker", "--gpu", str(gpu)]
    )
    children: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    def start(gpu: int) -> None:
        child_env = {**env, "CUDA_VISIBLE_DEVICES": str(gpu), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
        children[gpu] = subprocess.Popen(command_for(gpu), env=child_env)
        logger.info("worker for GPU %d started (pid %d)", gpu, children[gpu].pid)

    # Handlers first: a signal that arrives while the children start still reaches them.
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    codes: dict[int, int] = {}
    try:
        for gpu in gpus:
            start(gpu)
        while len(codes) < len(children):
            for gpu, child in list(children.items()):
                code = child.poll()
                if gpu in codes or code is None:
                    continue
                if not stopping and (code == CONSUMER_STALLED_EXIT_CODE or code < 0):
                    logger.warning("worker for GPU %d exited with %d; starting it again", gpu, code)
                    start(gpu)
                    continue
                codes[gpu] = code
                logger.info("worker for GPU %d exited with %d", gpu, code)
            time.sleep(poll_s)  # polling children's exit status, not synchronising on time
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return max((abs(code) for code in codes.values()), default=0)
