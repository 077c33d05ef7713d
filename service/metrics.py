"""Prometheus metrics: job and worker gauges read from the store at scrape time, and HTTP traffic.

Job counts and stage histograms live in Redis (every worker adds to them), so any gateway replica
exports the same numbers. Each app has its own registry: nothing registers globally.
"""

import logging
import time
from collections.abc import Iterator

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.jobs.heartbeats import WorkerHeartbeats
from core.jobs.stage_stats import STAGE_BUCKET_BOUNDS, StageStatistics
from core.jobs.store import JobStore

logger = logging.getLogger(__name__)


class StoreCollector(Collector):
    """Reads job counts, queue depth, workers and stage histograms from the store on every scrape."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.heartbeats, self.stage_stats = WorkerHeartbeats(store.db), StageStatistics(store.db)

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

    def _store_metrics(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("mimicmotion_jobs", "Jobs by status.", labels=["status"])
        for status, count in self.store.status_counts().items():
            jobs.add_metric([status.value], count)
        yield jobs
        queue_depth, running = self.store.queue_length(), len(self.store.running_ids())
        yield GaugeMetricFamily("mimicmotion_queue_depth", "Jobs waiting in the queue.", value=queue_depth)
        yield GaugeMetricFamily("mimicmotion_running_jobs", "Jobs running now.", value=running)
        yield GaugeMetricFamily(
            "mimicmotion_live_workers", "Workers with a live heartbeat.", value=len(self.heartbeats.live())
        )
        stages = HistogramMetricFamily("mimicmotion_stage_seconds", "Time per job stage.", labels=["stage"])
        for stage, histogram in sorted(self.stage_stats.histograms().items()):
            # The store keeps per-bucket counts; Prometheus wants them cumulative.
            cumulative, buckets = 0, []
            for bound, count in zip(STAGE_BUCKET_BOUNDS, histogram.bucket_counts, strict=True):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            stages.add_metric([stage], buckets, sum_value=histogram.sum_s)
        yield stages


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


def create_registry(store: JobStore) -> tuple[CollectorRegistry, HttpMetrics]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    return registry, HttpMetrics(registry)
