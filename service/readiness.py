"""Readiness: Redis answers, result storage answers, and at least one worker has a live heartbeat.

Also surfaces, loudly, a worker running the tiny random model.
"""

from typing import Any

import redis

from core.errors import StorageError
from core.jobs.heartbeats import WorkerHeartbeats
from core.jobs.store import JobStore
from core.storage import Storage
from service.schemas import Readiness

TINY_MODEL_WARNING = "running a tiny random model: outputs are noise"


def _is_tiny(info: dict[str, Any]) -> bool:
    return bool(info.get("tiny_model"))


def check_readiness(store: JobStore, storage: Storage) -> Readiness:
    missing: list[str] = []
    workers: dict[str, dict[str, Any]] = {}
    redis_state = storage_state = "ok"
    try:
        store.ping()
        workers = WorkerHeartbeats(store.db).live()
    except redis.RedisError as exc:
        redis_state = f"unavailable: {type(exc).__name__}: {exc}"
        missing.append("redis")
    try:
        storage.check()
    except StorageError as exc:
        storage_state = f"unavailable: {exc.message}"
        missing.append("storage")
    if not workers:
        missing.append("worker")
    tiny_model = any(_is_tiny(info) for info in workers.values())
    return Readiness(
        status="not_ready" if missing else "ready",
        redis=redis_state,
        storage=storage_state,
        workers=sorted(workers),
        tiny_model=tiny_model,
        missing=missing,
        warning=TINY_MODEL_WARNING if tiny_model else None,
    )
