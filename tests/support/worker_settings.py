"""The Settings an in-process worker runs with in tests: the tiny model on CPU, the test Redis, loopback inputs."""

from pathlib import Path
from typing import Any

from core.settings import Settings


def worker_settings(tmp_path: Path, redis_url: str, model_dir: Path, **overrides: Any) -> Settings:
    """Float32 on CPU with the model in ``model_dir``, data under ``tmp_path / "data"``, and 127.0.0.0/8
    allowed (the test input servers listen there); ``overrides`` set or replace any other field."""
    fields: dict[str, Any] = {
        "model_dir": model_dir, "data_dir": tmp_path / "data", "device": "cpu", "dtype": "float32",
        "redis_url": redis_url, "fetch_allowed_networks": "127.0.0.0/8",
    }  # fmt: skip
    return Settings(**{**fields, **overrides})
