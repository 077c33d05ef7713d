"""Lease renewal from two threads at once (the worker's lease thread and its denoising steps)."""

import threading
import uuid

from core.contract.params import JobParams
from core.contract.records import Job
from core.jobs.store import JobStore


def test_concurrent_renewals_by_the_holder_never_read_as_a_lost_lease(redis_url: str) -> None:
    store = JobStore.from_url(redis_url)
    job = store.create(
        Job(id=uuid.uuid4().hex, owner="o", image_url="http://x/i", video_url="http://x/v", params=JobParams())
    )
    assert store.claim(job.id, "w1", lease_s=30) is not None
    results: list[bool] = []

    def renew() -> None:
        for _ in range(300):
            results.append(store.renew_lease(job.id, "w1", lease_s=30))

    threads = [threading.Thread(target=renew) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results.count(False) == 0 and len(results) == 900
    assert not store.renew_lease(job.id, "w2", lease_s=30)  # another worker still cannot
