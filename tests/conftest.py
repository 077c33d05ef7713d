"""Shared fixtures. Settings are built under tmp_path, never read from the developer's shell."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import Settings


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model directory with the real layout, built once per test run."""
    from core.models.tiny import make_tiny_model

    model_dir = tmp_path_factory.mktemp("tiny-model")
    make_tiny_model(model_dir)
    return model_dir


@pytest.fixture
def settings(tmp_path: Path, tiny_model_dir: Path) -> Settings:
    return Settings(model_dir=tiny_model_dir, data_dir=tmp_path / "data", device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One test-owned redis-server for the run."""
    from tests.support.redis_server import redis_server

    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """The test Redis, emptied before each test."""
    import redis

    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    client.close()
    return redis_server_url
