"""Webhooks end to end in-process: run_job and the gateway record events, the webhook worker (a real
Celery worker on the webhooks queue, fed by its due-set scheduler) sends them to a real receiver that
verifies every request with the standardwebhooks library. Retries are milliseconds apart."""

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient
from pydantic import SecretStr

from core import webhooks
from core.animate import Animator
from core.contract import events
from core.contract.params import JobParams
from core.contract.queues import WEBHOOK_QUEUE
from core.contract.records import Job, JobStatus
from core.execution.run import RunDeps, run_job
from core.execution.webhook_sender import WebhookDeps, deliver_webhook
from core.jobs.deliveries import Deliveries, Delivery, DeliveryState
from core.jobs.store import JobStore
from core.settings import Settings
from core.storage import create_storage
from service.app import create_app
from service.auth import owner_of_key
from tests.support.network import forbid_non_loopback_traffic
from tests.support.processes import wait_for
from tests.support.task_senders import RecordingSender
from tests.support.webhook_receiver import Receiver, webhook_receiver
from tests.support.worker_settings import worker_settings
from worker import webhooks as webhook_worker

SECRET = webhooks.new_secret()
FAST_RETRIES = "0,0.05,0.05,0.05,0.05"  # five attempts, 50 ms apart
ALL_EVENTS = list(events.WEBHOOK_EVENTS)
KEY = "key-webhooks-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
TINY_PARAMS = JobParams(
    resolution=128, num_inference_steps=4, tile_size=8, tile_overlap=2, sample_stride=2, fps=8, seed=7
)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_non_loopback_traffic(monkeypatch)


@pytest.fixture
def hook_settings(tmp_path: Path, tiny_model_dir: Path, redis_url: str) -> Settings:
    return worker_settings(
        tmp_path, redis_url, tiny_model_dir, webhook_secret=SecretStr(SECRET), webhook_retry_schedule_s=FAST_RETRIES,
        webhook_timeout_s=5.0, api_keys=SecretStr(KEY), public_url="http://testserver",
    )  # fmt: skip


@pytest.fixture
def store(redis_url: str) -> JobStore:
    return JobStore.from_url(redis_url)


@pytest.fixture
def hook_deps(store: JobStore, hook_settings: Settings) -> WebhookDeps:
    return WebhookDeps(deliveries=Deliveries(store.db), storage=create_storage(hook_settings), settings=hook_settings)


@pytest.fixture
def webhook_worker_running(hook_settings: Settings, hook_deps: WebhookDeps) -> Iterator[None]:
    """The webhook worker as its process runs it: Celery on the webhooks queue plus the due-set scheduler."""
    with _webhook_worker(hook_deps):
        yield


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver(SECRET) as running:
        yield running


def _job(inputs_url: str, receiver: Receiver, events: list[str], **changes: Any) -> Job:
    return Job(**{
        "id": uuid.uuid4().hex, "owner": owner_of_key(KEY), "image_url": f"{inputs_url}/person.png",
        "video_url": f"{inputs_url}/drive.mp4", "params": TINY_PARAMS,
        "webhook_url": receiver.url, "webhook_events": events, **changes,
    })  # fmt: skip


def _all_final(deliveries: Deliveries, job_id: str, count: int) -> bool:
    found = deliveries.for_job(job_id)
    return len(found) == count and all(d.state.is_final for d in found)


def test_receiver_failing_then_recovering_gets_exactly_the_events_in_order_with_stable_ids(
    store: JobStore, hook_settings: Settings, hook_deps: WebhookDeps, animator: Animator, inputs_url: str,
    receiver: Receiver, webhook_worker_running: None,
) -> None:  # fmt: skip
    receiver.answer = lambda r, webhook_id, event_type: 500 if len(r.requests) < 3 else 200  # down, then back
    job = store.create(_job(inputs_url, receiver, ["job.started", "job.progress", "job.succeeded"]))
    deps = RunDeps(
        store=store, storage=create_storage(hook_settings), animator=lambda: animator, settings=hook_settings,
        worker="gpu-test@host", webhook_progress_interval_s=0.0,
    )  # fmt: skip

    run_job(job.id, deps)

    assert store.get(job.id).status is JobStatus.succeeded
    deliveries = hook_deps.deliveries
    recorded = deliveries.for_job(job.id)
    wait_for(lambda: _all_final(deliveries, job.id, len(recorded)), timeout_s=30, message="all deliveries final")
    recorded = deliveries.for_job(job.id)
    types = [d.type for d in recorded]
    # Exactly what was asked for: started, progress (throttled to 10 % steps, at most 10), succeeded.
    assert types[0] == "job.started" and types[-1] == "job.succeeded"
    assert 1 <= types.count("job.progress") <= 10 and set(types) == {"job.started", "job.progress", "job.succeeded"}
    assert all(d.state is DeliveryState.delivered for d in recorded)
    # The receiver got each event once, in order, every request signed; failed attempts reused the id.
    requests = receiver.snapshot()
    assert all(r.verified for r in requests)
    assert [r.webhook_id for r in receiver.accepted()] == [d.id for d in recorded]
    assert [r.type for r in receiver.accepted()] == types
    assert [(r.webhook_id, r.answered) for r in requests[:4]] == [(recorded[0].id, 500)] * 3 + [(recorded[0].id, 200)]
    assert [a.status_code for a in recorded[0].attempts] == [500, 500, 500, 200]
    order = [d.id for d in recorded]
    assert [order.index(r.webhook_id) for r in requests] == sorted(order.index(r.webhook_id) for r in requests)
    # Each body is the public job as it was at the event, plus type.
    started, succeeded = receiver.accepted()[0].body, receiver.accepted()[-1].body
    assert started["status"] == "running" and started["id"] == job.id and started["output"] is None
    assert succeeded["status"] == "succeeded" and succeeded["output"]["video_url"].startswith("http://testserver/")
    progress = [r.body["progress"]["fraction"] for r in receiver.accepted() if r.type == "job.progress"]
    assert progress == sorted(progress)
    # ...and the job shows its deliveries.
    shown = TestClient(create_app(hook_settings, store=store)).get(f"/jobs/{job.id}", headers=AUTH).json()
    shown = shown["webhook_deliveries"]
    assert shown[0] == {"id": recorded[0].id, "type": "job.started", "state": "delivered", "attempts": 4,
                        "last_status": 200, "last_error": None, "next_retry_at": None}  # fmt: skip
    assert [d["type"] for d in shown] == types


def test_an_event_that_is_never_accepted_is_given_up_before_the_next_is_sent(
    store: JobStore, hook_deps: WebhookDeps, inputs_url: str, receiver: Receiver, webhook_worker_running: None
) -> None:
    receiver.answer = lambda r, webhook_id, event_type: 503 if event_type == "job.started" else 204
    job = store.create(_job(inputs_url, receiver, ALL_EVENTS))
    deliveries = hook_deps.deliveries
    started = store.claim(job.id, "w1", lease_s=60)
    assert started is not None
    deliveries.record_status_event(started)
    deliveries.record_status_event(store.transition(job.id, JobStatus.canceled))

    wait_for(lambda: _all_final(deliveries, job.id, 2), timeout_s=30, message="both deliveries final")
    first, second = deliveries.for_job(job.id)
    assert (first.type, first.state, len(first.attempts)) == ("job.started", DeliveryState.failed, 5)
    assert (second.type, second.state, len(second.attempts)) == ("job.canceled", DeliveryState.delivered, 1)
    assert [r.type for r in receiver.snapshot()] == ["job.started"] * 5 + ["job.canceled"]


def test_canceling_a_queued_job_sends_job_canceled_and_the_job_never_starts(
    store: JobStore, hook_settings: Settings, hook_deps: WebhookDeps, receiver: Receiver,
    webhook_worker_running: None,
) -> None:  # fmt: skip
    client = TestClient(create_app(hook_settings, store=store, task_sender=RecordingSender()))
    body = {"image_url": "https://example.com/p.png", "video_url": "https://example.com/d.mp4",
            "webhook_url": receiver.url, "webhook_events": ["job.started", "job.canceled", "job.failed"]}  # fmt: skip
    job = client.post("/jobs", json=body, headers=AUTH).json()
    assert client.post(f"/jobs/{job['id']}/cancel", headers=AUTH).json()["status"] == "canceled"

    def never_loaded() -> Animator:
        raise AssertionError("a canceled job must not start")

    deps = RunDeps(store=store, storage=hook_deps.storage, animator=never_loaded, settings=hook_settings, worker="w")
    run_job(job["id"], deps)  # the queued message arrives after the cancel

    wait_for(lambda: receiver.accepted(), timeout_s=30, message="the job.canceled webhook")
    assert [(r.type, r.body["status"]) for r in receiver.accepted()] == [("job.canceled", "canceled")]
    assert store.get(job["id"]).attempts == 0
    assert client.get(f"/jobs/{job['id']}", headers=AUTH).json()["webhook_deliveries"][0]["state"] == "delivered"


def test_receiver_that_refuses_connections_is_retried_then_marked_failed(
    store: JobStore, hook_deps: WebhookDeps, inputs_url: str
) -> None:
    with webhook_receiver(SECRET) as gone:
        url = gone.url  # a port nothing listens on once the block ends
    job = store.create(_job(inputs_url, gone, ALL_EVENTS).model_copy(update={"webhook_url": url}))
    delivery = hook_deps.deliveries.record_event(job, "job.started")
    assert delivery is not None
    for _ in range(5):  # what the scheduler would do at each due time
        deliver_webhook(delivery.id, hook_deps)
    failed = hook_deps.deliveries.get(delivery.id)
    assert failed is not None and failed.state is DeliveryState.failed and len(failed.attempts) == 5
    assert all(a.status_code is None and "cannot connect" in (a.error or "") for a in failed.attempts)
    assert delivery.id not in hook_deps.deliveries.due_ids()


def _one_attempt(hook_deps: WebhookDeps, job: Job) -> Delivery:
    """Record job.started and make one attempt at it, as the scheduler would when it falls due."""
    delivery = hook_deps.deliveries.record_event(job, "job.started")
    assert delivery is not None
    deliver_webhook(delivery.id, hook_deps)
    attempted = hook_deps.deliveries.get(delivery.id)
    assert attempted is not None and len(attempted.attempts) == 1
    return attempted


def _is_retry_scheduled(hook_deps: WebhookDeps, delivery: Delivery) -> bool:
    return delivery.next_retry_at is not None and delivery.id in hook_deps.deliveries.due_ids()


def test_receiver_answering_410_gone_fails_the_delivery_after_one_attempt(
    store: JobStore, hook_deps: WebhookDeps, inputs_url: str, receiver: Receiver
) -> None:
    receiver.answer = lambda r, webhook_id, event_type: 410
    delivery = _one_attempt(hook_deps, store.create(_job(inputs_url, receiver, ALL_EVENTS)))

    assert (delivery.state, delivery.attempts[0].status_code) == (DeliveryState.failed, 410)
    assert not _is_retry_scheduled(hook_deps, delivery) and delivery.id not in hook_deps.deliveries.due_ids()
    assert len(receiver.snapshot()) == 1


def test_receiver_that_does_not_answer_in_time_gets_the_attempt_recorded_and_retried(
    store: JobStore, hook_deps: WebhookDeps, inputs_url: str, receiver: Receiver
) -> None:
    answer_now = threading.Event()

    def too_late(r: Receiver, webhook_id: str, event_type: str) -> int:
        answer_now.wait(10)  # held open past the sender's timeout, released when the test ends
        return 200

    receiver.answer = too_late
    impatient = WebhookDeps(deliveries=hook_deps.deliveries, storage=hook_deps.storage,
                            settings=hook_deps.settings.model_copy(update={"webhook_timeout_s": 0.3}))  # fmt: skip
    try:
        delivery = _one_attempt(impatient, store.create(_job(inputs_url, receiver, ALL_EVENTS)))
    finally:
        answer_now.set()

    attempt = delivery.attempts[0]
    assert (attempt.status_code, attempt.error) == (None, "no complete answer within 0.3 s")
    assert delivery.state is DeliveryState.pending and _is_retry_scheduled(hook_deps, delivery)


def test_receiver_dribbling_its_answer_is_cut_off_at_the_attempt_deadline(
    store: JobStore, hook_deps: WebhookDeps, inputs_url: str, receiver: Receiver
) -> None:
    # 40 bytes of "HTTP/1.1 200 OK ..." at 0.1 s each: every read is well inside the timeout, the whole is not.
    receiver.drip_interval_s = 0.1
    impatient = WebhookDeps(deliveries=hook_deps.deliveries, storage=hook_deps.storage,
                            settings=hook_deps.settings.model_copy(update={"webhook_timeout_s": 0.5}))  # fmt: skip

    delivery = _one_attempt(impatient, store.create(_job(inputs_url, receiver, ALL_EVENTS)))

    attempt = delivery.attempts[0]
    assert (attempt.status_code, attempt.error) == (None, "no complete answer within 0.5 s")
    assert attempt.duration_s < 1.5, attempt.duration_s  # the deadline, not the receiver's 4 s
    assert delivery.state is DeliveryState.pending and _is_retry_scheduled(hook_deps, delivery)


def test_one_keys_slow_receivers_do_not_delay_another_keys_events(
    store: JobStore, hook_settings: Settings, hook_deps: WebhookDeps, inputs_url: str, receiver: Receiver
) -> None:
    # The worker has 4 delivery threads; key A's six jobs all point at a receiver that takes 3 s to answer
    # (its deadline), and key B's job at a prompt one. A may hold webhook_max_in_flight_per_key (2) threads.
    receiver.drip_interval_s = 3.0 / 40
    slow_deps = WebhookDeps(deliveries=hook_deps.deliveries, storage=hook_deps.storage,
                            settings=hook_settings.model_copy(update={"webhook_timeout_s": 3.0}))  # fmt: skip
    with webhook_receiver(SECRET) as prompt, _webhook_worker(slow_deps):
        for _ in range(6):
            slow_job = store.create(_job(inputs_url, receiver, ALL_EVENTS))
            assert hook_deps.deliveries.record_event(slow_job, "job.started") is not None
        wait_for(lambda: len(receiver.snapshot()) >= 2, timeout_s=10, message="key A's attempts to be under way")
        other = store.create(_job(inputs_url, prompt, ALL_EVENTS, owner=owner_of_key("key-b-0123456789")))
        recorded = time.monotonic()
        assert hook_deps.deliveries.record_event(other, "job.started") is not None

        wait_for(lambda: prompt.accepted(), timeout_s=10, message="key B's event")
        latency_s = time.monotonic() - recorded
        attempts_a = len(receiver.snapshot())

    assert latency_s < 1.5, latency_s  # not behind A's 3 s attempts
    assert attempts_a == 2  # A's share, still under way; its other four wait in the due set, not in threads


def test_owner_slots_are_limited_per_key_released_and_lapse(hook_deps: WebhookDeps) -> None:
    deliveries, now = hook_deps.deliveries, datetime.now(UTC)
    first, second = (deliveries.take_owner_slot("o1", limit=2, ttl_s=30, now=now) for _ in range(2))
    assert first and second and deliveries.take_owner_slot("o1", limit=2, ttl_s=30, now=now) is None
    assert deliveries.take_owner_slot("o2", limit=2, ttl_s=30, now=now) is not None  # another key is not held
    deliveries.release_owner_slot("o1", first)
    assert deliveries.take_owner_slot("o1", limit=2, ttl_s=30, now=now) is not None
    # A worker that died mid-attempt never releases; its slots lapse after ttl_s.
    assert deliveries.take_owner_slot("o1", limit=2, ttl_s=30, now=now + timedelta(seconds=31)) is not None


@contextmanager
def _webhook_worker(deps: WebhookDeps) -> Iterator[None]:
    """Celery on the webhooks queue (4 delivery threads) plus the due-set scheduler, as the process runs them."""
    webhook_worker.configure(deps)
    app = webhook_worker.create_webhook_celery(deps.settings)
    scheduler = webhook_worker.DueScheduler(app, deps.deliveries, deps.settings, poll_s=0.02)
    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False, queues=[WEBHOOK_QUEUE]):
        scheduler.start()
        try:
            yield
        finally:
            scheduler.stop()


@pytest.mark.parametrize("status", [302, 307])
def test_receiver_that_redirects_is_not_followed_and_the_attempt_is_retried(
    store: JobStore, hook_deps: WebhookDeps, inputs_url: str, receiver: Receiver, status: int
) -> None:
    with webhook_receiver(SECRET) as elsewhere:
        receiver.answer, receiver.location = (lambda r, webhook_id, event_type: status), elsewhere.url
        delivery = _one_attempt(hook_deps, store.create(_job(inputs_url, receiver, ALL_EVENTS)))
        assert elsewhere.snapshot() == []  # the redirect target never hears of it

    assert (delivery.state, delivery.attempts[0].status_code) == (DeliveryState.pending, status)
    assert _is_retry_scheduled(hook_deps, delivery)


def test_private_webhook_address_is_refused_without_the_allow_list(
    store: JobStore, hook_settings: Settings, hook_deps: WebhookDeps, inputs_url: str, receiver: Receiver
) -> None:
    closed = hook_deps.settings.model_copy(update={"fetch_allowed_networks": []})
    deps = WebhookDeps(deliveries=hook_deps.deliveries, storage=hook_deps.storage, settings=closed)
    job = store.create(_job(inputs_url, receiver, ALL_EVENTS))
    delivery = hook_deps.deliveries.record_event(job, "job.started")
    assert delivery is not None
    deliver_webhook(delivery.id, deps)
    refused = hook_deps.deliveries.get(delivery.id)
    assert refused is not None and refused.state is DeliveryState.failed and len(refused.attempts) == 1
    assert (refused.attempts[0].error or "").startswith("forbidden_address")
    assert receiver.snapshot() == []
    # The gateway refuses such a URL up front, and any webhook when no secret is configured.
    client = TestClient(create_app(closed, store=store))
    body = {"image_url": "https://example.com/p.png", "video_url": "https://example.com/d.mp4",
            "webhook_url": receiver.url}  # fmt: skip
    response = client.post("/jobs", json=body, headers=AUTH)
    assert response.status_code == 422 and "webhook_url" in response.json()["error"]["message"]
    unsigned = TestClient(create_app(hook_settings.model_copy(update={"webhook_secret": SecretStr("")}), store=store))
    response = unsigned.post("/jobs", json=body, headers=AUTH)
    assert response.status_code == 422 and "MIMICMOTION_WEBHOOK_SECRET" in response.json()["error"]["message"]


def test_concurrent_attempts_of_one_delivery_send_it_once(
    store: JobStore, hook_deps: WebhookDeps, inputs_url: str, receiver: Receiver
) -> None:
    gate = threading.Event()

    def slow_ok(r: Receiver, webhook_id: str, event_type: str) -> int:
        gate.wait(timeout=10)  # holds the first attempt open while the others try
        return 200

    receiver.answer = slow_ok
    job = store.create(_job(inputs_url, receiver, ALL_EVENTS))
    delivery = hook_deps.deliveries.record_event(job, "job.started")
    assert delivery is not None
    threads = [threading.Thread(target=deliver_webhook, args=(delivery.id, hook_deps)) for _ in range(4)]
    for thread in threads:
        thread.start()
    # Read-only probe: taking the lock here would make every thread give up.
    wait_for(lambda: hook_deps.deliveries.is_job_locked(job.id), timeout_s=10, message="lock held")
    gate.set()
    for thread in threads:
        thread.join(timeout=10)
    sent = hook_deps.deliveries.get(delivery.id)
    assert sent is not None and sent.state is DeliveryState.delivered and len(sent.attempts) == 1
    assert len(receiver.snapshot()) == 1


def test_once_only_events_are_recorded_once_and_unrequested_ones_not_at_all(
    store: JobStore, hook_deps: WebhookDeps, inputs_url: str, receiver: Receiver
) -> None:
    job = store.create(_job(inputs_url, receiver, ["job.started", "job.progress"]))
    deliveries = hook_deps.deliveries
    assert deliveries.record_event(job, "job.started") is not None
    assert deliveries.record_event(job, "job.started") is None  # a second claim after a lost worker
    assert deliveries.record_event(job, "job.succeeded") is None  # not asked for
    assert deliveries.record_event(job, "job.progress") is not None
    assert deliveries.record_event(job, "job.progress") is not None
    assert [d.type for d in deliveries.for_job(job.id)] == ["job.started", "job.progress", "job.progress"]
    assert deliveries.record_event(job.model_copy(update={"webhook_url": None}), "job.failed") is None
