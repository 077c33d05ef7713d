"""The reaper on a real Redis: lapsed leases are handed back once, live ones are left alone."""

import uuid

import pytest

from core.contract.params import JobParams
from core.contract.records import Job, JobStatus
from core.jobs.store import JobStore
from worker.reaper import reap_once


@pytest.fixture
def store(redis_url: str) -> JobStore:
    return JobStore.from_url(redis_url)


def running_job(store: JobStore, worker: str = "w1") -> Job:
    job = store.create(
        Job(id=uuid.uuid4().hex, owner="o", image_url="http://x/i", video_url="http://x/v", params=JobParams(seed=1))
    )
    claimed = store.claim(job.id, worker, lease_s=30)
    assert claimed is not None
    return claimed


def lose_worker(store: JobStore, job_id: str) -> None:
    store.db.client.delete(f"mm:lease:{job_id}")  # what an expired lease looks like


def test_reap_requeues_a_job_whose_lease_lapsed_and_sends_it_again(store: JobStore) -> None:
    waiting = store.create(
        Job(id="waiting", owner="o", image_url="http://x/i", video_url="http://x/v", params=JobParams(seed=1))
    )
    job = running_job(store)
    lose_worker(store, job.id)
    sent: list[tuple[str, str]] = []
    assert reap_once(store, lambda job_id, queue: sent.append((job_id, queue)), max_attempts=3) == [job.id]
    assert sent == [(job.id, "gpu")]
    requeued = store.get(job.id)
    assert (requeued.status, requeued.worker, requeued.attempts) == (JobStatus.queued, None, 1)
    assert store.queue_position(job.id) == 0 and store.queue_position(waiting.id) == 1
    again = store.claim(job.id, "w2", lease_s=30)
    assert again is not None and again.attempts == 2


def test_reap_leaves_jobs_with_a_live_lease(store: JobStore) -> None:
    job = running_job(store)
    sent: list[str] = []
    assert reap_once(store, lambda job_id, _: sent.append(job_id), max_attempts=3) == []
    assert sent == [] and store.get(job.id).status is JobStatus.running


def test_reap_fails_a_job_that_lost_its_worker_too_often(store: JobStore) -> None:
    job = running_job(store)
    for worker in ("w2", "w3"):
        lose_worker(store, job.id)
        reap_once(store, lambda *_: None, max_attempts=3)
        assert store.claim(job.id, worker, lease_s=30) is not None
    lose_worker(store, job.id)
    sent: list[str] = []
    assert reap_once(store, lambda job_id, _: sent.append(job_id), max_attempts=3) == []
    failed = store.get(job.id)
    assert failed.status is JobStatus.failed and failed.error is not None
    assert failed.error.code == "worker_lost" and failed.attempts == 3
    assert sent == [] and store.running_ids() == []


def test_two_reapers_hand_a_job_back_once(store: JobStore) -> None:
    job = running_job(store)
    lose_worker(store, job.id)
    sent: list[str] = []
    first = reap_once(store, lambda job_id, _: sent.append(job_id), max_attempts=3)
    second = reap_once(JobStore(store.db), lambda job_id, _: sent.append(job_id), max_attempts=3)
    assert first + second == [job.id] and sent == [job.id]


def test_reap_resends_to_the_jobs_own_queue(store: JobStore) -> None:
    job = store.create(
        Job(
            id="big", owner="o", image_url="http://x/i", video_url="http://x/v", params=JobParams(seed=1),
            queue="gpu-80gb",
        )
    )
    store.claim(job.id, "w1", lease_s=30)
    lose_worker(store, job.id)
    sent: list[tuple[str, str]] = []
    reap_once(store, lambda job_id, queue: sent.append((job_id, queue)), max_attempts=3)
    assert sent == [("big", "gpu-80gb")]


def test_reap_records_job_failed_for_a_job_that_asked_for_it(store: JobStore) -> None:
    from core.jobs.deliveries import Deliveries

    job = store.create(
        Job(
            id="hooked", owner="o", image_url="http://x/i", video_url="http://x/v", params=JobParams(seed=1),
            webhook_url="http://hooks.example/in", webhook_events=["job.failed"],
        )
    )
    store.claim(job.id, "w1", lease_s=30)
    lose_worker(store, job.id)
    reap_once(store, lambda *_: None, max_attempts=1)
    assert [delivery.type for delivery in Deliveries(store.db).for_job(job.id)] == ["job.failed"]


def test_resend_stranded_gives_an_old_queued_job_without_a_message_a_new_one(store: JobStore) -> None:
    from datetime import timedelta

    from core.jobs.broker import broker_queue_length
    from worker.reaper import resend_stranded

    old = store.create(
        Job(id="stranded", owner="o", image_url="http://x/i", video_url="http://x/v", params=JobParams(seed=1))
    )
    fresh = store.create(
        Job(id="fresh", owner="o", image_url="http://x/i", video_url="http://x/v", params=JobParams(seed=1))
    )
    sent: list[tuple[str, str]] = []

    def send(job_id: str, queue: str) -> None:
        sent.append((job_id, queue))
        store.db.client.rpush(queue, job_id)  # what the broker holds once a message is sent

    later = old.created_at + timedelta(seconds=300)
    waiting = lambda queue: broker_queue_length(store.db.client, queue)  # noqa: E731
    assert resend_stranded(store, send, waiting, min_age_s=120, now=later) == ["stranded", "fresh"]
    # Once messages wait in the list, nothing more is sent for anyone.
    assert resend_stranded(store, send, waiting, min_age_s=120, now=later) == []
    store.db.client.delete("gpu")
    assert resend_stranded(store, send, waiting, min_age_s=600, now=later) == []  # both younger than 600 s
    assert sent == [("stranded", "gpu"), ("fresh", "gpu")]
    assert fresh.id in store.queued_ids(10)


def test_resend_stranded_leaves_claimed_jobs_alone(store: JobStore) -> None:
    from datetime import timedelta

    from worker.reaper import resend_stranded

    job = running_job(store)
    sent: list[str] = []
    resend_stranded(store, lambda job_id, _: sent.append(job_id), lambda _: 0, min_age_s=0,
                    now=job.created_at + timedelta(hours=1))  # fmt: skip
    assert sent == []
