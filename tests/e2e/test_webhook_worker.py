"""`mimicmotion webhook-worker` as its own process: it sends a recorded event to a real receiver,
retrying a failed attempt, and stops cleanly on SIGTERM."""

import uuid
from pathlib import Path

import pytest

from core import webhooks
from core.contract.params import JobParams
from core.contract.records import Job
from core.jobs.deliveries import Deliveries, DeliveryState
from core.jobs.store import JobStore
from tests.support.processes import mimicmotion, service_env, wait_for
from tests.support.webhook_receiver import Receiver, webhook_receiver

pytestmark = pytest.mark.e2e


def test_webhook_worker_process_delivers_with_retries_and_stops_on_sigterm(tmp_path: Path, redis_url: str) -> None:
    secret = webhooks.new_secret()
    env = service_env({
        "MIMICMOTION_REDIS_URL": redis_url, "MIMICMOTION_DATA_DIR": str(tmp_path / "data"),
        "MIMICMOTION_WEBHOOK_SECRET": secret, "MIMICMOTION_WEBHOOK_RETRY_SCHEDULE_S": "0,0.1,0.1",
        "MIMICMOTION_FETCH_ALLOWED_NETWORKS": "127.0.0.0/8",
    })  # fmt: skip
    store = JobStore.from_url(redis_url)
    deliveries = Deliveries(store.db)
    with webhook_receiver(secret) as receiver, mimicmotion("webhooks", ["webhook-worker"], env, tmp_path) as worker:
        receiver.answer = lambda r, webhook_id, event_type: 500 if not r.requests else 200

        job = store.create(Job(
            id=uuid.uuid4().hex, owner="o", image_url="https://example.com/p.png",
            video_url="https://example.com/d.mp4", params=JobParams(seed=1), webhook_url=receiver.url,
            webhook_events=["job.started"],
        ))  # fmt: skip
        delivery = deliveries.record_event(job, "job.started")
        assert delivery is not None

        def delivered() -> bool:
            found = deliveries.get(delivery.id)
            return found is not None and found.state is DeliveryState.delivered

        wait_for(delivered, timeout_s=60, message=f"the delivery\n{worker.logs()}")
        assert _received(receiver) == [(delivery.id, 500), (delivery.id, 200)]
        assert worker.stop() == 0, worker.logs()


def _received(receiver: Receiver) -> list[tuple[str, int]]:
    return [(r.webhook_id, r.answered) for r in receiver.snapshot() if r.verified]
