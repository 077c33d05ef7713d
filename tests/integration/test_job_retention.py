"""Retention against a real Redis: finished jobs and their deliveries expire, live jobs never do.

Expiry itself is Redis's; the tests end a key's life with ``EXPIRE key 0`` instead of waiting for it.
"""

import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from core import webhooks
from core.contract.params import JobParams
from core.contract.records import Job, JobError, JobStatus
from core.execution.webhook_sender import WebhookDeps, deliver_webhook
from core.jobs.deliveries import Deliveries
from core.jobs.store import JobStore
from core.settings import Settings
from core.storage import create_storage
from service.app import create_app
from service.auth import owner_of_key
from tests.support.task_senders import RecordingSender

RETENTION_S = 3 * 24 * 3600  # not the default, so a TTL equal to it proves the setting was passed on
KEY = "key-retention-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
BODY = {"image_url": "https://example.com/person.png", "video_url": "https://example.com/dance.mp4"}


@pytest.fixture
def store(redis_url: str) -> JobStore:
    return JobStore.from_url(redis_url, job_retention_s=RETENTION_S)


def new_job(owner: str = "owner-a", **changes: Any) -> Job:
    return Job(
        id=uuid.uuid4().hex, owner=owner, image_url="http://x/i.png", video_url="http://x/v.mp4",
        params=JobParams(seed=1), **changes,
    )  # fmt: skip


def ttl(store: JobStore, key: str) -> int:
    return int(store.db.client.ttl(key))


def assert_kept_for_retention(store: JobStore, key: str) -> None:
    assert RETENTION_S - 60 < ttl(store, key) <= RETENTION_S, key


def expire_now(store: JobStore, key: str) -> None:
    assert store.db.client.expire(key, 0), key


@pytest.mark.parametrize("target", [JobStatus.succeeded, JobStatus.failed, JobStatus.canceled])
def test_job_store_terminal_transition_sets_the_retention_and_live_states_none(
    store: JobStore, target: JobStatus
) -> None:
    job = store.create(new_job())
    key = f"mm:job:{job.id}"
    assert ttl(store, key) == -1  # queued: never expires, however long the queue
    store.claim(job.id, "w1", lease_s=30)
    store.update_running(job.id, "w1", progress=None)
    assert ttl(store, key) == -1  # running
    error = JobError(code="x", message="y") if target is JobStatus.failed else None
    store.transition(job.id, target, worker="w1", error=error)
    assert_kept_for_retention(store, key)


def test_job_store_requeued_job_loses_no_ttl_and_a_reaped_failure_gets_one(store: JobStore) -> None:
    job = store.create(new_job())
    store.claim(job.id, "w1", lease_s=30)
    store.db.client.delete(f"mm:lease:{job.id}")  # the worker is gone
    assert store.reap_lapsed(job.id, max_attempts=2) is not None  # back to the queue
    assert ttl(store, f"mm:job:{job.id}") == -1
    store.claim(job.id, "w2", lease_s=30)
    store.db.client.delete(f"mm:lease:{job.id}")
    reaped = store.reap_lapsed(job.id, max_attempts=2)
    assert reaped is not None and reaped.status is JobStatus.failed
    assert_kept_for_retention(store, f"mm:job:{job.id}")


def test_job_store_listing_skips_and_prunes_expired_ids_and_pages_past_them(store: JobStore) -> None:
    ids = [store.create(new_job()).id for _ in range(7)]
    for job_id in ids:
        store.transition(job_id, JobStatus.canceled)
    newest_first = ids[::-1]
    # A whole page expired (the newest three), then one in the middle of the next page.
    for job_id in [*newest_first[:3], newest_first[4]]:
        expire_now(store, f"mm:job:{job_id}")

    first = store.list_jobs("owner-a", limit=3)
    assert first.jobs == [] and first.next_cursor is not None  # empty, but paging goes on
    second = store.list_jobs("owner-a", limit=3, cursor=first.next_cursor)
    assert [job.id for job in second.jobs] == [newest_first[3], newest_first[5]] and second.next_cursor
    third = store.list_jobs("owner-a", limit=3, cursor=second.next_cursor)
    assert [job.id for job in third.jobs] == [newest_first[6]] and third.next_cursor is None

    assert store.db.client.zrevrange("mm:owner:owner-a", 0, -1) == [newest_first[i] for i in (3, 5, 6)]
    assert [job.id for job in store.list_jobs("owner-a", limit=3).jobs] == [newest_first[i] for i in (3, 5, 6)]


def test_gateway_expired_job_answers_404_and_leaves_the_listing(tmp_path: Path, redis_url: str) -> None:
    settings = Settings(
        redis_url=redis_url, data_dir=tmp_path / "data", public_url="http://testserver",
        api_keys=SecretStr(KEY), job_retention_s=RETENTION_S,
    )  # fmt: skip
    app = create_app(settings, task_sender=RecordingSender())  # the app builds its store from the settings
    client = TestClient(app)
    kept, gone = (client.post("/jobs", json=BODY, headers=AUTH).json()["id"] for _ in range(2))
    for job_id in (kept, gone):
        assert client.post(f"/jobs/{job_id}/cancel", headers=AUTH).status_code == 200
    store: JobStore = app.state.store
    assert_kept_for_retention(store, f"mm:job:{gone}")

    expire_now(store, f"mm:job:{gone}")
    response = client.get(f"/jobs/{gone}", headers=AUTH)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    never = client.get(f"/jobs/{uuid.uuid4().hex}", headers=AUTH)  # the same answer as for an unknown id
    assert (never.status_code, never.json()["error"]["code"]) == (404, "not_found")
    listing = client.get("/jobs", headers=AUTH).json()
    assert [job["id"] for job in listing["data"]] == [kept] and listing["next_cursor"] is None
    assert store.db.client.zrange(f"mm:owner:{owner_of_key(KEY)}", 0, -1) == [kept]


def _webhook_job(store: JobStore) -> Job:
    job = new_job(webhook_url="http://127.0.0.1:9/hook", webhook_events=["job.started", "job.succeeded"])
    return store.create(job)


def test_deliveries_keys_expire_with_the_job_and_each_write_renews_them_all(store: JobStore) -> None:
    deliveries = Deliveries(store.db)
    job = _webhook_job(store)
    started = deliveries.record_event(job, "job.started")
    assert started is not None
    job_keys = [f"mm:job_deliveries:{job.id}", f"mm:job_events_once:{job.id}"]
    for key in [f"mm:delivery:{started.id}", *job_keys]:
        assert_kept_for_retention(store, key)

    # job.started has been retried for a day; recording job.succeeded keeps it (and the job's keys) too.
    for key in [f"mm:delivery:{started.id}", *job_keys]:
        store.db.client.expire(key, 3600)
    succeeded = deliveries.record_event(job, "job.succeeded")
    assert succeeded is not None
    for key in [f"mm:delivery:{started.id}", f"mm:delivery:{succeeded.id}", *job_keys]:
        assert_kept_for_retention(store, key)

    # An attempt's save renews the waiting job.succeeded with it.
    store.db.client.expire(f"mm:delivery:{succeeded.id}", 3600)
    deliveries.save(started)
    assert_kept_for_retention(store, f"mm:delivery:{succeeded.id}")
    assert ttl(store, "mm:webhooks_due") == -1  # shared by all jobs: never expires


def test_webhook_sender_drops_a_due_delivery_whose_record_expired(
    store: JobStore, tmp_path: Path, redis_url: str
) -> None:
    secret = SecretStr(webhooks.new_secret())
    settings = Settings(redis_url=redis_url, data_dir=tmp_path / "data", webhook_secret=secret)
    deps = WebhookDeps(deliveries=Deliveries(store.db), storage=create_storage(settings), settings=settings)
    job = _webhook_job(store)
    delivery = deps.deliveries.record_event(job, "job.started")
    assert delivery is not None
    expire_now(store, f"mm:delivery:{delivery.id}")

    assert deps.deliveries.claim_due(now=deps.now(), lease_s=60) == [delivery.id]
    deliver_webhook(delivery.id, deps)  # as the webhooks task does with the id it was handed
    assert deps.deliveries.due_ids() == []
    assert deps.deliveries.for_job(job.id) == []
