"""Readiness: Redis answers, result storage answers, and every model served has a worker with a live heartbeat.

Also surfaces, loudly, a worker running the tiny random model.
"""

from typing import Any

import redis

from core.contract.params import DEFAULT_MODEL
from core.errors import StorageError
from core.jobs.heartbeats import WorkerHeartbeats
from core.jobs.store import JobStore
from core.settings import Settings
from core.storage import Storage
from service.schemas import Readiness

TINY_MODEL_WARNING = "running a tiny random model: outputs are noise"


def _is_tiny(info: dict[str, Any]) -> bool:
    return bool(info.get("tiny_model"))


def workers_by_model(workers: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Live workers' names per model they serve (a heartbeat from before models had none: MimicMotion)."""
    served: dict[str, list[str]] = {}
    for name, info in sorted(workers.items()):
        served.setdefault(str(info.get("model", DEFAULT_MODEL)), []).append(name)
    return served


def check_readiness(store: JobStore, storage: Storage, settings: Settings) -> Readiness:
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
    else:  # each model this deployment serves needs a worker of its own: its jobs wait otherwise
        served = workers_by_model(workers)
        missing += [f"worker for model {model}" for model in settings.models if not served.get(model)]
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
