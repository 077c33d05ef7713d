"""API keys: missing or unknown keys, one key's jobs hidden from another, and no keys only on loopback."""

import pytest
from fastapi.testclient import TestClient

from core.errors import ConfigurationError
from core.jobs.store import JobStore
from core.settings import Settings
from service.app import create_app
from tests.integration.gateway.api import AUTH_A, AUTH_B, BODY, KEY_A, submit
from tests.support.task_senders import RecordingSender


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {KEY_A}"}, {"Authorization": KEY_A}]
)
def test_missing_or_unknown_key_is_401(client: TestClient, headers: dict[str, str]) -> None:
    for response in (client.post("/jobs", json=BODY, headers=headers), client.get("/jobs", headers=headers)):
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


def test_another_keys_job_is_404_and_not_listed(client: TestClient, store: JobStore) -> None:
    job = submit(client, headers=AUTH_A)
    assert client.get(f"/jobs/{job['id']}", headers=AUTH_B).status_code == 404
    assert client.get("/jobs", headers=AUTH_B).json() == {"data": [], "next_cursor": None}
    assert store.get(job["id"]).owner not in (KEY_A, "anonymous") and len(store.get(job["id"]).owner) == 16


def test_no_keys_means_anonymous_on_loopback_and_refusal_elsewhere(
    gateway_settings: Settings, store: JobStore, sender: RecordingSender
) -> None:
    open_settings = gateway_settings.model_copy(update={"api_keys": ()})
    client = TestClient(create_app(open_settings, store=store, task_sender=sender))
    job = submit(client, headers={})
    assert store.get(job["id"]).owner == "anonymous"
    for host in ("0.0.0.0", "192.168.1.4", "example.com"):
        with pytest.raises(ConfigurationError, match="MIMICMOTION_API_KEYS"):
            create_app(open_settings.model_copy(update={"host": host}), store=store, task_sender=sender)
