"""Shared fixtures. Settings are built under tmp_path, never read from the developer's shell."""

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from core.settings import Settings

if TYPE_CHECKING:
    from core.animate import Animator
    from tests.support.client_stack import ClientStack
    from tests.support.input_files import InputServer


@pytest.fixture(autouse=True)
def _fresh_log_context() -> Iterator[None]:
    """Fields a test binds to the log context (a job's stage) end with it, so no later test's lines carry them."""
    from core.log_format import log_context

    with log_context():
        yield


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model directory with the real layout, built once per test run."""
    from core.models.tiny import make_tiny_model

    model_dir = tmp_path_factory.mktemp("tiny-model")
    make_tiny_model(model_dir)
    return model_dir


@pytest.fixture(scope="session")
def tiny_wan_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Wan2.2-Animate directory with the published layout (plus DWPose/), built once per test run."""
    from core.backends.wan_animate.tiny import make_tiny_wan_model

    return make_tiny_wan_model(tmp_path_factory.mktemp("tiny-wan-model"))


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
def input_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[int], "InputServer"]]:
    """``input_servers(num_frames)``: a loopback server with person.png, drive.mp4 of that many frames and
    garbage.mp4, started once per frame count for the run."""
    from tests.support.input_files import input_server, write_inputs

    with ExitStack() as stack:
        servers: dict[int, InputServer] = {}

        def serve(num_frames: int) -> "InputServer":
            if num_frames not in servers:
                directory = write_inputs(tmp_path_factory.mktemp(f"inputs-{num_frames}"), num_frames=num_frames)
                servers[num_frames] = stack.enter_context(input_server(directory))
            return servers[num_frames]

        yield serve


@pytest.fixture(scope="session")
def inputs_url(input_servers: Callable[[int], "InputServer"]) -> str:
    """The inputs with a 17-frame drive.mp4 (9 samples at stride 2)."""
    return input_servers(17).url


@pytest.fixture(scope="session")
def short_inputs_url(input_servers: Callable[[int], "InputServer"]) -> str:
    """The inputs with a 3-frame drive.mp4: the quickest real job, for stacks of worker processes."""
    return input_servers(3).url


@pytest.fixture
def isolated_cli_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """For tests that call the CLI in-process: no MIMICMOTION_* model settings from the shell, fresh cache."""
    from core.settings import get_settings

    for name in ("MIMICMOTION_MODEL_DIR", "MIMICMOTION_DEVICE", "MIMICMOTION_DTYPE"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def client_stack(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, short_inputs_url: str
) -> "Iterator[ClientStack]":
    """One gateway and worker (own Redis, API keys) for the Python client's and the CLI's tests, started once."""
    from tests.support.client_stack import client_stack

    with client_stack(tmp_path_factory.mktemp("client-stack"), tiny_model_dir, short_inputs_url) as stack:
        yield stack
