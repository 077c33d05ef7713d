"""Worker heartbeats in Redis: each live worker keeps ``worker(name)`` (keys.py) alive with a TTL.

The gateway's /readyz and /metrics and the worker's container health check read them; a worker that
dies stops writing and its key expires.
"""

import json
from typing import Any, cast

from core.jobs.keys import KeyedRedis


class WorkerHeartbeats:
    """The live workers and what each said about itself (device, GPU, tiny model, queues)."""

    def __init__(self, db: KeyedRedis) -> None:
        self.db = db

    def record(self, worker: str, info: dict[str, Any], *, ttl_s: int) -> None:
        """Say that ``worker`` is alive for another ``ttl_s`` seconds."""
        self.db.client.set(self.db.keys.worker(worker), json.dumps(info), ex=ttl_s)

    def remove(self, worker: str) -> None:
        """Withdraw ``worker`` now rather than when its heartbeat expires."""
        self.db.client.delete(self.db.keys.worker(worker))

    def live(self) -> dict[str, dict[str, Any]]:
        """Worker name -> its info, for every heartbeat that has not expired."""
        keys = cast(list[str], list(self.db.client.scan_iter(match=self.db.keys.worker("*"), count=100)))
        values = cast(list[str | None], self.db.client.mget(keys)) if keys else []
        name_start = len(self.db.keys.worker(""))
        return {key[name_start:]: json.loads(value) for key, value in zip(keys, values, strict=True) if value}
