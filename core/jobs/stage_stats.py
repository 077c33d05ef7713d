"""Stage durations as histograms in Redis, added to by every worker so that any gateway exports the same.

One hash per stage under ``stage_seconds(stage)`` (keys.py): a count per bucket bound (not cumulative),
``sum`` and ``count``. Totals for /metrics; they never expire.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from core.jobs.keys import KeyedRedis

# Histogram buckets for stage durations, in seconds: from sub-second stages to hour-long denoising.
STAGE_BUCKETS_S = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
# The hash fields of the buckets, and Prometheus's ``le`` labels: each bound as str(), then +Inf.
STAGE_BUCKET_BOUNDS = (*map(str, STAGE_BUCKETS_S), "+Inf")


@dataclass(frozen=True)
class StageHistogram:
    bucket_counts: list[int]  # per STAGE_BUCKET_BOUNDS, not cumulative
    sum_s: float
    count: int


class StageStatistics:
    """Per-stage duration histograms shared by all workers."""

    def __init__(self, db: KeyedRedis) -> None:
        self.db = db

    def record(self, timings: Mapping[str, float]) -> None:
        """Add one job's seconds per stage."""
        with self.db.client.pipeline(transaction=False) as pipe:
            for stage, seconds in timings.items():
                bucket = next((str(b) for b in STAGE_BUCKETS_S if seconds <= b), "+Inf")
                key = self.db.keys.stage_seconds(stage)
                pipe.hincrby(key, bucket, 1)
                pipe.hincrbyfloat(key, "sum", seconds)
                pipe.hincrby(key, "count", 1)
            pipe.execute()

    def histograms(self) -> dict[str, StageHistogram]:
        """Stage name -> its histogram, for every stage any worker has recorded."""
        histograms = {}
        name_start = len(self.db.keys.stage_seconds(""))
        for key in cast(list[str], list(self.db.client.scan_iter(match=self.db.keys.stage_seconds("*"), count=100))):
            raw = cast(dict[str, str], self.db.client.hgetall(key))
            histograms[key[name_start:]] = StageHistogram(
                bucket_counts=[int(raw.get(bound, 0)) for bound in STAGE_BUCKET_BOUNDS],
                sum_s=float(raw.get("sum", 0.0)),
                count=int(raw.get("count", 0)),
            )
        return histograms
