"""Shared fixtures. Settings are built under tmp_path, never read from the developer's shell."""

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from core.settings import Settings

if TYPE_CHECKING:
    from core.animate import Animator


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


@pytest.fixture(scope="session")
def animator(tiny_model_dir: Path) -> "Animator":
    """The tiny model loaded once for the run, on CPU in float32 (what a worker process holds)."""
    from core.animate import load_animator
    from core.models.files import resolve_model_files

    return load_animator(resolve_model_files(tiny_model_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def inputs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A loopback file server with person.png, drive.mp4 (17 frames) and garbage.mp4."""
    from tests.support.file_server import file_server
    from tests.support.media import moving_person_frames, person_image, write_garbage, write_image, write_video

    directory = tmp_path_factory.mktemp("inputs")
    write_image(directory / "person.png", person_image(200, 150, seed=1))
    write_video(directory / "drive.mp4", moving_person_frames(17, 96, 128, seed=2), fps=24)
    write_garbage(directory / "garbage.mp4")
    with file_server(directory) as url:
        yield url


@pytest.fixture
def isolated_cli_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """For tests that call the CLI in-process: no MIMICMOTION_* model settings from the shell, fresh cache."""
    from core.settings import get_settings

    for name in ("MIMICMOTION_MODEL_DIR", "MIMICMOTION_DEVICE", "MIMICMOTION_DTYPE"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
