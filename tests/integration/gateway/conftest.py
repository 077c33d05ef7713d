"""The gateway under test: two API keys, a queue limit of 3 per key, a recording task sender."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from core.jobs.store import JobStore
from core.settings import Settings
from service.app import create_app
from tests.integration.gateway.api import KEY_A, KEY_B
from tests.support.task_senders import RecordingSender


@pytest.fixture
def gateway_settings(tmp_path: Path, redis_url: str) -> Settings:
    return Settings(
        redis_url=redis_url, data_dir=tmp_path / "data", public_url="http://testserver",
        api_keys=SecretStr(f"{KEY_A}, {KEY_B}"), max_queued_jobs_per_key=3,
    )  # fmt: skip


@pytest.fixture
def store(redis_url: str) -> JobStore:
    return JobStore.from_url(redis_url)


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def client(gateway_settings: Settings, store: JobStore, sender: RecordingSender) -> TestClient:
    return TestClient(create_app(gateway_settings, store=store, task_sender=sender))
