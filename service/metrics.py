"""Prometheus metrics: job and worker gauges read from the store at scrape time, and HTTP traffic.

Job counts and stage histograms live in Redis (every worker adds to them), so any gateway replica
exports the same numbers. Each app has its own registry: nothing registers globally.
"""

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.contract.queues import GPU_QUEUE
from core.contract.records import utc_now
from core.errors import JobNotFoundError
from core.jobs.broker import broker_queue_length
from core.jobs.deliveries import Deliveries
from core.jobs.heartbeats import WorkerHeartbeats
from core.jobs.stage_stats import STAGE_BUCKET_BOUNDS, StageStatistics
from core.jobs.store import JobStore

logger = logging.getLogger(__name__)


class StoreCollector(Collector):
    """Reads job counts, queue depth, workers and stage histograms from the store on every scrape."""

    def __init__(self, store: JobStore, queues: Sequence[str] = (GPU_QUEUE,)) -> None:
        self.store, self.queues = store, tuple(queues)
        self.heartbeats, self.stage_stats = WorkerHeartbeats(store.db), StageStatistics(store.db)
        self.deliveries = Deliveries(store.db)

    def collect(self) -> Iterator[Metric]:
        store_up = GaugeMetricFamily("mimicmotion_store_up", "Whether the job store answered this scrape.")
        try:
            metrics = list(self._store_metrics())
        except redis.RedisError as exc:
            logger.warning("metrics: job store unavailable: %s", exc)
            store_up.add_metric([], 0)
            yield store_up
            return
        store_up.add_metric([], 1)
        yield store_up
        yield from metrics

    def _queue_metrics(self, live: dict[str, dict[str, Any]]) -> Iterator[Metric]:
        return _queue_metrics_of(self.store, self.queues, live)

    def _failure_and_webhook_metrics(self) -> Iterator[Metric]:
        failures = GaugeMetricFamily(
            "mimicmotion_job_failures", "Failed jobs by error.code, since the store began.", labels=["code"]
        )
        for code, count in sorted(self.store.failure_counts().items()):
            failures.add_metric([code], count)
        yield failures
        yield GaugeMetricFamily(
            "mimicmotion_webhook_backlog", "Webhook deliveries waiting for an attempt (due or retrying).",
            value=self.deliveries.backlog(),
        )
        attempts = GaugeMetricFamily(
            "mimicmotion_webhook_attempts", "Webhook attempts by result, since the store began.", labels=["result"]
        )
        for result, count in self.deliveries.attempt_counts().items():
            attempts.add_metric([result], count)
        yield attempts

    def _store_metrics(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("mimicmotion_jobs", "Jobs by status.", labels=["status"])
        for status, count in self.store.status_counts().items():
            jobs.add_metric([status.value], count)
        yield jobs
        queue_depth, running = self.store.queue_length(), len(self.store.running_ids())
        yield GaugeMetricFamily("mimicmotion_queue_depth", "Jobs waiting in the queue.", value=queue_depth)
        yield GaugeMetricFamily("mimicmotion_running_jobs", "Jobs running now.", value=running)
        live = self.heartbeats.live()
        yield GaugeMetricFamily("mimicmotion_live_workers", "Workers with a live heartbeat.", value=len(live))
        yield from self._queue_metrics(live)
        yield from self._failure_and_webhook_metrics()
        stages = HistogramMetricFamily("mimicmotion_stage_seconds", "Time per job stage.", labels=["stage"])
        for stage, histogram in sorted(self.stage_stats.histograms().items()):
            # The store keeps per-bucket counts; Prometheus wants them cumulative.
            cumulative, buckets = 0, []
            for bound, count in zip(STAGE_BUCKET_BOUNDS, histogram.bucket_counts, strict=True):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            stages.add_metric([stage], buckets, sum_value=histogram.sum_s)
        yield stages


def _queue_of_running(store: JobStore) -> Iterator[str]:
    """The queue of each running job (at most one per worker: a few reads a scrape)."""
    for job_id in store.running_ids():
        try:
            yield store.get(job_id).queue
        except JobNotFoundError:  # finished and expired between the two reads
            continue


def _queue_metrics_of(
    store: JobStore, queues: Sequence[str], live: dict[str, dict[str, Any]]
) -> Iterator[Metric]:
    """Per GPU-class queue: messages waiting in the broker, and live workers consuming it."""
    served = {queue for info in live.values() for queue in info.get("queues", [])}
    waiting = GaugeMetricFamily(
        "mimicmotion_queue_waiting", "Task messages waiting in a GPU-class queue's broker list.", labels=["queue"]
    )
    workers = GaugeMetricFamily(
        "mimicmotion_queue_live_workers", "Live workers consuming a GPU-class queue.", labels=["queue"]
    )
    running = GaugeMetricFamily(
        "mimicmotion_queue_running_jobs", "Jobs running now, by the queue they came from (KEDA per model).",
        labels=["queue"],
    )  # fmt: skip
    running_by_queue: dict[str, int] = {}
    for queue in _queue_of_running(store):
        running_by_queue[queue] = running_by_queue.get(queue, 0) + 1
    for queue in sorted({*queues, *served, *running_by_queue}):
        waiting.add_metric([queue], broker_queue_length(store.db.client, queue))
        workers.add_metric([queue], sum(queue in info.get("queues", []) for info in live.values()))
        running.add_metric([queue], running_by_queue.get(queue, 0))
    yield waiting
    yield workers
    yield running
    oldest = store.oldest_queued_created_at()
    age_s = (utc_now() - oldest).total_seconds() if oldest is not None else 0.0
    yield GaugeMetricFamily(
        "mimicmotion_oldest_queued_job_age_seconds", "Age of the job at the head of the queue (0: none queued).",
        value=max(0.0, age_s),
    )


class HttpMetrics:
    """Request counts and latencies by route template (never the raw path) and status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "mimicmotion_http_requests", "HTTP requests.", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "mimicmotion_http_request_duration_seconds", "HTTP request latency.", ["method", "route"],
            registry=registry,
        )


class RequestMetricsMiddleware:
    """ASGI middleware feeding HttpMetrics; the route label is set after routing, from the matched route."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # an exception before the response starts is answered 500
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - started)


def create_registry(store: JobStore, queues: Sequence[str] = (GPU_QUEUE,)) -> tuple[CollectorRegistry, HttpMetrics]:
    """The gateway's registry; ``queues`` are the GPU-class queues it routes to (workers add theirs)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, queues))
    return registry, HttpMetrics(registry)
