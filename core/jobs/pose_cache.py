"""The pose cache's store: entries' bytes in storage, their sizes and last use in Redis, bounded in total size.

An entry is opaque bytes under a name ``{scope}/{fingerprint}`` (the execution layer decides both). The
bytes live in storage (``pose-cache/{name}.npz``), not in Redis: an entry is about 3 KB per person per
driving frame, so a few MB for a long clip, and Redis holds the job store in memory. Redis keeps the index
that bounds the total (``keys.py``: ``pose_cache_used``, ``pose_cache_sizes``). Torch-free.

Every entry in storage is in the index first (it is indexed before its bytes are stored, and its bytes are
deleted before it leaves the index), so eviction can reach every stored byte; an index entry whose bytes
are missing reads as a miss and is dropped. Concurrent workers may evict a little more than needed (two
evicting at once), never leave the total above the bound for long.
"""

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from core.errors import StorageError
from core.jobs.keys import KeyedRedis
from core.storage import MissingObjectError, Storage, validate_key

logger = logging.getLogger(__name__)

STORAGE_PREFIX = "pose-cache/"
CONTENT_TYPE = "application/x-npz"
_MAX_EVICTIONS_PER_PUT = 1000  # a put never loops for long, even with a bound far below the entries' sizes


class PoseCacheUnavailableError(Exception):
    """Redis or storage failed while reading or writing the cache: the caller goes on without it."""


class PoseCacheStore:
    """Get and put cache entries' bytes; each put evicts the least recently used until the total fits."""

    def __init__(
        self, db: KeyedRedis, storage: Storage, *, max_bytes: int, scratch: Path, clock: Callable[[], float] = time.time
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        self.db, self.storage, self.max_bytes, self.scratch, self.clock = db, storage, max_bytes, scratch, clock
        self._used, self._sizes = db.keys.pose_cache_used, db.keys.pose_cache_sizes

    def get(self, name: str) -> bytes | None:
        """The entry's bytes (marking it used), or None when there is none.

        Raises:
            PoseCacheUnavailableError: Redis or storage failed.
        """
        key = self._storage_key(name)
        try:
            if self.db.client.zscore(self._used, name) is None:
                return None
            self.scratch.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="pose-cache-", dir=self.scratch) as tmp:
                path = Path(tmp) / "entry.npz"
                try:
                    self.storage.get_file(key, path)
                except MissingObjectError:  # evicted by another worker meanwhile, or its bytes never stored
                    self._forget(name)
                    return None
                data = path.read_bytes()
            self.db.client.zadd(self._used, {name: self.clock()}, xx=True)
        except (redis.RedisError, StorageError, OSError) as exc:
            raise PoseCacheUnavailableError(f"reading pose cache entry {name}: {exc}") from exc
        return data

    def put(self, name: str, data: bytes) -> int:
        """Store the entry (replacing one of the same name), then evict until the cache fits; the entries evicted.

        An entry larger than the whole bound is not stored.

        Raises:
            PoseCacheUnavailableError: Redis or storage failed (the entry is then not indexed).
        """
        if len(data) > self.max_bytes:
            logger.info("pose cache entry %s: %d bytes, more than the cache's %d; not stored", name, len(data),
                        self.max_bytes)  # fmt: skip
            return 0
        key = self._storage_key(name)
        try:
            # Indexed first, so no stored bytes are ever outside the index's reach.
            with self.db.client.pipeline() as pipe:
                pipe.zadd(self._used, {name: self.clock()})
                pipe.hset(self._sizes, name, len(data))
                pipe.execute()
            self.scratch.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="pose-cache-", dir=self.scratch) as tmp:
                path = Path(tmp) / "entry.npz"
                path.write_bytes(data)
                try:
                    self.storage.put_file(key, path, CONTENT_TYPE)
                except StorageError:
                    self._forget(name)
                    raise
            return self._evict(keep=name)
        except (redis.RedisError, StorageError, OSError) as exc:
            raise PoseCacheUnavailableError(f"storing pose cache entry {name}: {exc}") from exc

    def total_bytes(self) -> int:
        """The sum of the indexed entries' sizes."""
        return sum(int(size) for size in self.db.client.hvals(self._sizes))

    def names(self) -> list[str]:
        """The indexed entries, least recently used first."""
        return [str(name) for name in self.db.client.zrange(self._used, 0, -1)]

    def _evict(self, *, keep: str) -> int:
        """Delete the least recently used entries (never ``keep``, the one just stored) until the total fits."""
        evicted = 0
        while evicted < _MAX_EVICTIONS_PER_PUT and self.total_bytes() > self.max_bytes:
            oldest = [str(name) for name in self.db.client.zrange(self._used, 0, 1)]
            victim = next((name for name in oldest if name != keep), None)
            if victim is None:
                break
            self.storage.delete(self._storage_key(victim))  # bytes first: the index must cover every stored byte
            self._forget(victim)
            evicted += 1
        return evicted

    def _forget(self, name: str) -> None:
        with self.db.client.pipeline() as pipe:
            pipe.zrem(self._used, name)
            pipe.hdel(self._sizes, name)
            pipe.execute()

    @staticmethod
    def _storage_key(name: str) -> str:
        return validate_key(f"{STORAGE_PREFIX}{name}.npz")
