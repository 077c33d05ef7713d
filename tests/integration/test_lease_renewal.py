"""Lease renewal from two threads at once (the worker's lease thread and its denoising steps), and the
LeaseKeeper that runs the thread."""

import threading
import uuid

import pytest

from core.contract.params import JobParams
from core.contract.records import Job, JobStatus
from core.errors import JobCanceledError
from core.execution.lease import LeaseKeeper
from core.jobs.store import JobStore
from tests.support.processes import wait_for


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


def test_lease_keeper_renews_from_its_thread_and_is_lost_once_the_job_is_no_longer_ours(redis_url: str) -> None:
    store = JobStore.from_url(redis_url)
    job = store.create(
        Job(id=uuid.uuid4().hex, owner="o", image_url="http://x/i", video_url="http://x/v", params=JobParams())
    )
    assert store.claim(job.id, "w1", lease_s=1) is not None
    lease_key, keeper = store.db.keys.lease(job.id), LeaseKeeper(store, job.id, "w1", lease_s=1)
    with keeper.kept():
        store.db.client.pexpire(lease_key, 300)  # nearly lapsed: only the keeper's thread extends it
        wait_for(lambda: store.db.client.pttl(lease_key) > 500, timeout_s=10, message="the lease to be renewed")
        keeper.check()  # still ours

        store.transition(job.id, JobStatus.canceled)  # the gateway cancels: the lease goes with it
        wait_for(lambda: keeper.lost, timeout_s=10, message="the keeper to see the lease lost")
        with pytest.raises(JobCanceledError, match=f"job {job.id} was canceled or taken over"):
            keeper.check()
    assert not any(thread.name == f"lease-{job.id}" for thread in threading.enumerate())
