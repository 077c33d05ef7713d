"""A worker process's own Prometheus endpoint: GPU memory, model load time, jobs by outcome.

The gateway's /metrics already exports what every worker writes to Redis (queue depth, running
jobs, stage histograms); this adds what only the process holding the GPU can see. Each worker
process serves its own registry on ``worker_metrics_port`` (plus its GPU number under --gpus).
torch is only read from ``sys.modules``, never imported here: a CPU-less scrape must not load it.
"""

import logging
import sys
from collections.abc import Callable, Iterator
from threading import Thread
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

from celery.signals import task_postrun, task_prerun
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.contract.queues import ANIMATE_TASK
from core.contract.records import CacheUse
from core.errors import JobNotFoundError
from core.jobs.store import JobStore

if TYPE_CHECKING:  # core.execution.checkpoints imports torch
    from core.execution.checkpoints import CheckpointStats

logger = logging.getLogger(__name__)

# Peak memory per job: from a small tiny-model job up to an 80 GiB card.
PEAK_MEMORY_BUCKETS_BYTES = tuple(float(2**n) for n in range(24, 38))


class GpuMemoryCollector(Collector):
    """Device memory read at scrape time, when this process has initialised CUDA; nothing otherwise."""

    def collect(self) -> Iterator[Metric]:
        torch: Any = sys.modules.get("torch")
        if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return
        device = torch.cuda.current_device()
        free_bytes, total_bytes = torch.cuda.mem_get_info(device)
        readings = {
            "mimicmotion_worker_gpu_memory_total_bytes": ("Device memory.", total_bytes),
            "mimicmotion_worker_gpu_memory_free_bytes": ("Free device memory (all processes).", free_bytes),
            "mimicmotion_worker_gpu_memory_allocated_bytes": (
                "Memory held by this process's tensors.", torch.cuda.memory_allocated(device)
            ),
            "mimicmotion_worker_gpu_memory_reserved_bytes": (
                "Memory held by this process's caching allocator.", torch.cuda.memory_reserved(device)
            ),
            "mimicmotion_worker_gpu_memory_max_allocated_bytes": (
                "Peak tensor memory since the last job started.", torch.cuda.max_memory_allocated(device)
            ),
        }  # fmt: skip
        for name, (documentation, value) in readings.items():
            yield GaugeMetricFamily(name, documentation, value=float(value))


class WorkerMetrics:
    """The worker's metrics on their own registry (nothing registers globally, so tests can build many)."""

    def __init__(self, worker: str, info: dict[str, Any], store: JobStore) -> None:
        self.store = store
        self.registry = CollectorRegistry(auto_describe=True)
        self.info = Gauge(
            "mimicmotion_worker_info", "This worker: name, device, GPU, tiny model.",
            ["worker", "device", "gpu", "tiny_model"], registry=self.registry,
        )  # fmt: skip
        labels = (worker, str(info.get("device")), str(info.get("gpu")), str(bool(info.get("tiny_model"))))
        self.info.labels(*labels).set(1)
        self.model_load_seconds = Gauge(
            "mimicmotion_worker_model_load_seconds", "Time the models took to load at start.", registry=self.registry
        )
        self.jobs = Counter(
            "mimicmotion_worker_jobs", "Jobs this worker handled, by the job's status afterwards.", ["outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.running = Gauge(
            "mimicmotion_worker_running_jobs", "Animate tasks running in this process (the GPU part of a job).",
            registry=self.registry,
        )  # fmt: skip
        self.job_seconds = Histogram(
            "mimicmotion_worker_job_seconds", "Wall time of one job, claim to final write.", registry=self.registry,
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, float("inf")),
        )  # fmt: skip
        self.peak_gpu_memory = Histogram(
            "mimicmotion_worker_job_peak_gpu_memory_bytes", "Peak tensor memory of one job (CUDA only).",
            registry=self.registry, buckets=(*PEAK_MEMORY_BUCKETS_BYTES, float("inf")),
        )  # fmt: skip
        self.checkpoints = Counter(
            "mimicmotion_worker_checkpoints", "Denoising and result checkpoints by result (written, failed).",
            ["result"], registry=self.registry,
        )  # fmt: skip
        self.checkpoint_bytes = Counter(
            "mimicmotion_worker_checkpoint_bytes", "Bytes of the checkpoints written.", registry=self.registry
        )
        self.checkpoint_seconds = Counter(
            "mimicmotion_worker_checkpoint_seconds", "Seconds spent writing checkpoints.",
            registry=self.registry,
        )  # fmt: skip
        self.resumes = Counter(
            "mimicmotion_worker_resumes", "Jobs resumed from a previous attempt's checkpoint (either kind).",
            registry=self.registry,
        )  # fmt: skip
        self.steps_saved = Counter(
            "mimicmotion_worker_resumed_steps", "Denoising steps not run again thanks to checkpoints.",
            registry=self.registry,
        )  # fmt: skip
        self.pose_cache_lookups = Counter(
            "mimicmotion_worker_pose_cache_lookups", "Driving-pose cache lookups by result (hit, miss).", ["result"],
            registry=self.registry,
        )  # fmt: skip
        for result in ("hit", "miss"):  # exported as 0 before the first lookup, so a hit rate is defined from the start
            self.pose_cache_lookups.labels(result)
        self.registry.register(GpuMemoryCollector())
        self.server: WSGIServer | None = None
        self._handlers: tuple[Callable[..., None], ...] = ()

    def serve(self, port: int, addr: str) -> tuple[WSGIServer, Thread]:
        """Serve /metrics from a daemon thread; returns the server so the caller can shut it down."""
        server, thread = start_http_server(port, addr=addr, registry=self.registry)
        self.server = server
        logger.info("worker metrics on http://%s:%d/metrics", addr, server.server_port)
        return server, thread

    def track_tasks(self) -> None:
        """Count the animate tasks running here, and each one's peak GPU memory."""
        running: set[str] = set()

        def before(task_id: str | None = None, task: Any = None, **_: Any) -> None:
            if getattr(task, "name", None) != ANIMATE_TASK or task_id is None:
                return
            running.add(task_id)
            self.running.inc()
            torch: Any = sys.modules.get("torch")
            if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
                torch.cuda.reset_peak_memory_stats()

        def after(task_id: str | None = None, **_: Any) -> None:
            if task_id not in running:
                return
            running.discard(task_id)
            self.running.dec()
            torch: Any = sys.modules.get("torch")
            if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
                self.peak_gpu_memory.observe(torch.cuda.max_memory_allocated())

        # weak=False: the handlers are closures, which Celery's default weak references would drop at once.
        task_prerun.connect(before, weak=False)
        task_postrun.connect(after, weak=False)
        self._handlers = (before, after)

    def job_ended(self, job_id: str, seconds: float) -> None:
        """run_job's end-of-job hook: the job's status afterwards, and its time from claim to final write."""
        self.job_seconds.observe(seconds)
        self.jobs.labels(self._outcome(job_id)).inc()

    def checkpoints_ended(self, stats: "CheckpointStats") -> None:
        """run_job's hook for a job that checkpointed: what its checkpoints cost and saved."""
        self.checkpoints.labels("written").inc(stats.written)
        self.checkpoints.labels("failed").inc(stats.failed)
        self.checkpoint_bytes.inc(stats.bytes_written)
        self.checkpoint_seconds.inc(stats.write_seconds)
        if stats.resumed_from_step is not None:
            self.resumes.inc()
            self.steps_saved.inc(stats.resumed_from_step)

    def pose_cache_looked_up(self, result: CacheUse) -> None:
        """The pose cache's hook, after each lookup (a job's, or the prefetch's for the next job)."""
        self.pose_cache_lookups.labels(result).inc()

    def close(self) -> None:
        """Stop serving and stop counting tasks (tests; a worker keeps both until it exits)."""
        if self._handlers:
            task_prerun.disconnect(self._handlers[0])
            task_postrun.disconnect(self._handlers[1])
            self._handlers = ()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def _outcome(self, job_id: str) -> str:
        try:
            return self.store.get(job_id).status.value
        except JobNotFoundError:
            return "unknown"
        except Exception:  # a metrics read must never fail the worker; the job itself is already recorded
            logger.warning("job %s: could not read its status for metrics", job_id, exc_info=True)
            return "unknown"


def start_worker_metrics(
    port: int, worker: str, info: dict[str, Any], store: JobStore, *, model_load_s: float, addr: str = "0.0.0.0"
) -> WorkerMetrics | None:
    """Build, wire and serve the worker's metrics; ``port`` 0 turns them off (returns None).

    All interfaces by default: Prometheus scrapes the worker from outside its container or pod.
    """
    if port == 0:
        return None
    metrics = WorkerMetrics(worker, info, store)
    metrics.model_load_seconds.set(model_load_s)
    metrics.track_tasks()
    metrics.serve(port, addr)
    return metrics
