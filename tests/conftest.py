"""Shared fixtures. Settings are built under tmp_path, never read from the developer's shell."""

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
