"""StageStatistics against a real Redis: per-bucket counts, sums, and the stored hash layout."""

import pytest

from core.jobs.keys import KeyedRedis
from core.jobs.stage_stats import STAGE_BUCKET_BOUNDS, STAGE_BUCKETS_S, StageHistogram, StageStatistics


@pytest.fixture
def stage_stats(redis_url: str) -> StageStatistics:
    return StageStatistics(KeyedRedis.from_url(redis_url))


def test_stage_histograms_count_each_bucket(stage_stats: StageStatistics) -> None:
    stage_stats.record({"denoising": 42.0, "pose": 0.05})
    stage_stats.record({"denoising": 7000.0})
    histograms = stage_stats.histograms()
    denoising = histograms["denoising"]
    assert denoising.count == 2 and denoising.sum_s == pytest.approx(7042.0)
    assert denoising.bucket_counts[7] == 1  # 42 s falls in the <= 60 s bucket
    assert denoising.bucket_counts[-1] == 1  # +Inf
    assert sum(denoising.bucket_counts) == 2
    assert histograms["pose"].bucket_counts == [1] + [0] * len(STAGE_BUCKETS_S)


def test_a_duration_on_a_bound_counts_in_that_bucket(stage_stats: StageStatistics) -> None:
    stage_stats.record({"pose": 0.5})
    assert stage_stats.histograms()["pose"].bucket_counts[:3] == [0, 1, 0]


def test_stage_histograms_read_what_an_older_release_wrote(stage_stats: StageStatistics) -> None:
    client = stage_stats.db.client
    client.hset("mm:stage_seconds:decode", mapping={"2.5": 3, "+Inf": 1, "sum": 4000.5, "count": 4})
    counts = [3 if bound == "2.5" else 1 if bound == "+Inf" else 0 for bound in STAGE_BUCKET_BOUNDS]
    assert stage_stats.histograms() == {"decode": StageHistogram(bucket_counts=counts, sum_s=4000.5, count=4)}
