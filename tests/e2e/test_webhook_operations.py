"""Operating webhooks and signed links on a real gateway and webhook worker (subprocesses, real Redis):
redelivery of a delivered event, signing with every secret during a rotation (each verified alone with
the standardwebhooks library), and an old local result link still working after the signing key rotates.
"""

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from core import webhooks
from core.settings import Settings
from core.storage import LocalStorage
from tests.support.processes import http_ok, mimicmotion, service_env, wait_for
from tests.support.redis_server import free_port
from tests.support.webhook_receiver import Receiver, webhook_receiver

pytestmark = pytest.mark.e2e

OLD_SECRET, NEW_SECRET = webhooks.new_secret(), webhooks.new_secret()
JOB = {"image_url": "https://example.com/me.png", "video_url": "https://example.com/dance.mp4",
       "webhook_events": ["job.canceled"]}  # fmt: skip


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory, redis_server_url: str) -> Iterator[tuple[str, Path]]:
    """A gateway and a webhook worker, both with two webhook secrets and two URL signing keys (new first)."""
    tmp = tmp_path_factory.mktemp("webhook-ops")
    port = free_port()
    env = service_env({
        "MIMICMOTION_REDIS_URL": redis_server_url, "MIMICMOTION_DATA_DIR": str(tmp / "data"),
        "MIMICMOTION_WEBHOOK_SECRET": f"{NEW_SECRET},{OLD_SECRET}", "MIMICMOTION_URL_SIGNING_KEY": "new-key,old-key",
        "MIMICMOTION_FETCH_ALLOWED_NETWORKS": "127.0.0.0/8", "MIMICMOTION_PUBLIC_URL": f"http://127.0.0.1:{port}",
    })  # fmt: skip
    with ExitStack() as stack:
        stack.enter_context(mimicmotion("gateway", ["serve", "--host", "127.0.0.1", "--port", str(port)], env, tmp))
        stack.enter_context(mimicmotion("webhooks", ["webhook-worker"], env, tmp))
        base_url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ok(f"{base_url}/healthz"), timeout_s=60, message="the gateway")
        yield base_url, tmp / "data"


def _canceled_job_delivered_to(client: httpx.Client, receiver: Receiver) -> dict:
    job = client.post("/jobs", json={**JOB, "webhook_url": receiver.url}).json()
    assert client.post(f"/jobs/{job['id']}/cancel").status_code == 200
    wait_for(lambda: receiver.accepted(), timeout_s=60, message="the job.canceled webhook")
    return job


def test_every_secret_signs_during_a_rotation_and_a_delivery_can_be_sent_again(services: tuple[str, Path]) -> None:
    base_url, _ = services
    with httpx.Client(base_url=base_url, trust_env=False, timeout=10) as client:
        for secret in (OLD_SECRET, NEW_SECRET):  # a receiver still on the old secret, one moved to the new
            with webhook_receiver(secret) as receiver:
                job = _canceled_job_delivered_to(client, receiver)
                (first,) = receiver.accepted()
                (delivery,) = client.get(f"/jobs/{job['id']}").json()["webhook_deliveries"]
                assert delivery["state"] == "delivered" and delivery["id"] == first.webhook_id

                again = client.post(f"/jobs/{job['id']}/webhooks/{delivery['id']}/redeliver")

                assert again.status_code == 202, again.text
                wait_for(lambda r=receiver: len(r.accepted()) == 2, timeout_s=60, message="the redelivery")
                second = receiver.accepted()[1]
                assert (second.webhook_id, second.type) == (first.webhook_id, "job.canceled")  # the same event
                assert second.body["id"] == job["id"]
                shown = client.get(f"/jobs/{job['id']}").json()["webhook_deliveries"][0]
                assert (shown["state"], shown["attempts"]) == ("delivered", 2)


def test_redelivery_is_owner_scoped_and_refuses_a_pending_or_unknown_delivery(services: tuple[str, Path]) -> None:
    base_url, _ = services
    with httpx.Client(base_url=base_url, trust_env=False, timeout=10) as client, webhook_receiver(NEW_SECRET) as r:
        job = _canceled_job_delivered_to(client, r)
        assert client.post(f"/jobs/{job['id']}/webhooks/msg_unknown/redeliver").status_code == 404
        other = client.post("/jobs", json=JOB).json()
        delivery_id = client.get(f"/jobs/{job['id']}").json()["webhook_deliveries"][0]["id"]
        assert client.post(f"/jobs/{other['id']}/webhooks/{delivery_id}/redeliver").status_code == 404


def test_a_link_signed_with_the_old_key_still_downloads_after_the_rotation(services: tuple[str, Path]) -> None:
    base_url, data_dir = services
    before = LocalStorage(Settings(data_dir=data_dir, url_signing_key="old-key", public_url=base_url))
    source = data_dir.parent / "result.mp4"
    source.write_bytes(b"result bytes")
    before.put_file("jobs/0123/attempt-1/output.mp4", source, "video/mp4")
    old_link = before.url_for("jobs/0123/attempt-1/output.mp4", 600).url
    retired = LocalStorage(Settings(data_dir=data_dir, url_signing_key="retired-key", public_url=base_url))
    retired_link = retired.url_for("jobs/0123/attempt-1/output.mp4", 600).url

    assert httpx.get(old_link, trust_env=False).content == b"result bytes"  # signed before the rotation
    assert httpx.get(retired_link, trust_env=False).status_code == 403  # a key no longer configured
