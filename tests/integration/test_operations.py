"""Operations: local storage retention (result folders of jobs whose record expired) and the redelivery rate limit
(real Redis, local storage)."""

import os
import time
from pathlib import Path

from core.contract.records import JobStatus
from core.jobs.retention import LocalResultsRetention, sweep_local_results
from core.jobs.store import JobStore
from core.settings import Settings
from core.storage import LocalStorage
from tests.support.jobs import create_job


def _store_result(storage: LocalStorage, job_id: str, tmp_path: Path, *, age_s: float) -> Path:
    source = tmp_path / "bytes"
    source.write_bytes(b"video")
    storage.put_file(f"jobs/{job_id}/attempt-1/output.mp4", source, "video/mp4")
    path = storage.root / "jobs" / job_id / "attempt-1" / "output.mp4"
    old = time.time() - age_s
    os.utime(path, (old, old))
    return path


def test_results_go_with_their_jobs_record_and_not_before(tmp_path: Path, redis_url: str) -> None:
    settings = Settings(data_dir=tmp_path / "data", url_signing_key="k", redis_url=redis_url)
    storage, store = LocalStorage(settings), JobStore.from_url(redis_url)
    kept_id = create_job(store, "http://127.0.0.1:1")
    store.transition(kept_id, JobStatus.canceled)  # finished, its record still kept
    kept = _store_result(storage, kept_id, tmp_path, age_s=7200)
    expired = _store_result(storage, "0" * 32, tmp_path, age_s=7200)  # no record: it expired
    fresh = _store_result(storage, "1" * 32, tmp_path, age_s=60)  # no record yet, but just written

    swept = sweep_local_results(store, storage, now=time.time())

    assert swept == ["0" * 32]
    assert kept.exists() and fresh.exists() and not expired.exists()
    assert not (storage.root / "jobs" / ("0" * 32)).exists()


def test_the_reapers_retention_pass_runs_at_most_every_interval(tmp_path: Path, redis_url: str) -> None:
    settings = Settings(data_dir=tmp_path / "data", url_signing_key="k", redis_url=redis_url)
    storage, store = LocalStorage(settings), JobStore.from_url(redis_url)
    clock = [time.time()]
    retention = LocalResultsRetention(store, storage, interval_s=600, clock=lambda: clock[0])
    retention()
    expired = _store_result(storage, "2" * 32, tmp_path, age_s=7200)
    retention()
    assert expired.exists()  # within the interval: no pass
    clock[0] += 601
    retention()
    assert not expired.exists()


def test_redeliveries_are_limited_per_key_and_minute(redis_url: str) -> None:
    import pytest

    from core.errors import RedeliveryLimitError
    from core.jobs.deliveries import Deliveries

    deliveries = Deliveries(JobStore.from_url(redis_url).db)
    minute_start = (time.time() // 60) * 60 + 3600 * 24  # a fresh window, 15 s into it
    for _ in range(10):
        deliveries.count_redelivery("owner-r", limit=10, now=minute_start + 15)
    with pytest.raises(RedeliveryLimitError) as refused:
        deliveries.count_redelivery("owner-r", limit=10, now=minute_start + 15)
    assert refused.value.retry_after_s == 45
    deliveries.count_redelivery("another-owner", limit=10, now=minute_start + 15)  # per key
    deliveries.count_redelivery("owner-r", limit=10, now=minute_start + 61)  # the next minute
