"""Every Redis key of the job store, and the keyed client that the store's parts share. Torch-free.

The key strings are operators' data: renaming one loses what an older release wrote, so a unit test
pins each format. With the default prefix ``mm``:

- ``mm:job:{id}``: the Job as JSON; expires ``job_retention_s`` after the job finishes
- ``mm:seq``: counter giving each job a creation sequence number
- ``mm:queued``: sorted set of queued ids by sequence (queue position = rank)
- ``mm:running``: set of running ids (for the reaper and metrics)
- ``mm:owner:{owner}``: sorted set of the owner's ids by sequence (listing, newest first)
- ``mm:lease:{id}``: the worker holding a running job; expires unless renewed
- ``mm:worker:{name}``: a worker's heartbeat (its info as JSON); expires when the worker is gone
- ``mm:status_counts``: hash of jobs per status, for /metrics; never expires
- ``mm:failure_codes``: hash of failed jobs per ``error.code``, for /metrics; never expires
- ``mm:webhook_attempt_counts``: hash of webhook attempts per result (delivered, failed), for /metrics; never expires
- ``mm:stage_seconds:{stage}``: hash histogram of a stage's durations (a count per bucket bound, ``sum``
  and ``count``), for /metrics; never expires
- ``mm:delivery:{id}``: a webhook Delivery as JSON; ``id`` is the ``webhook-id``, the same on every attempt
- ``mm:job_deliveries:{job_id}``: list of the job's delivery ids in event order
- ``mm:job_events_once:{job_id}``: hash of the once-only event types already recorded for the job
- ``mm:webhooks_due``: sorted set of delivery ids by the unix time they are due
- ``mm:job_delivering:{job_id}``: lock held while one of the job's deliveries is being attempted
- ``mm:owner_delivering:{owner}``: sorted set of the owner's attempts in flight, by when each slot lapses
- ``mm:idempotency:{owner}:{sha256 of the Idempotency-Key}``: the bound job id and the request's
  fingerprint as JSON; kept 24 hours
- ``mm:redeliveries:{owner}:{minute}``: webhook redeliveries the owner asked for in that minute (a rate limit);
  expires after two minutes
- ``mm:upload:{id}``: an Upload as JSON; expires a while after the upload does (the sweeper deletes first)
- ``mm:uploads_expiring``: sorted set of upload ids by the unix time their bytes may be deleted
- ``mm:uploads_in_flight:{owner}``: sorted set of the owner's uploads streaming or awaiting their direct PUT,
  by the unix time they stop counting
- ``mm:pose_cache_used``: sorted set of the pose cache's entries (``{scope}/{fingerprint}``) by the unix time each
  was last written or read; the least recently used go first when the cache is over its bound
- ``mm:pose_cache_sizes``: hash of each pose cache entry's size in bytes (its object is in storage, under
  ``pose-cache/{entry}.npz``); the sum is the cache's size

The Celery broker's queue lists (named after each queue, no prefix) are kombu's, not ours: see broker.py.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis
from redis.sentinel import Sentinel

if TYPE_CHECKING:
    from core.settings import Settings

from core.contract.records import DEFAULT_JOB_RETENTION_S


@dataclass(frozen=True)
class RedisKeys:
    """The key formats, one method or property each. A method given ``"*"`` gives its scan pattern."""

    prefix: str = "mm"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    @property
    def seq(self) -> str:
        return f"{self.prefix}:seq"

    @property
    def queued(self) -> str:
        return f"{self.prefix}:queued"

    @property
    def running(self) -> str:
        return f"{self.prefix}:running"

    def owner(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}"

    def lease(self, job_id: str) -> str:
        return f"{self.prefix}:lease:{job_id}"

    def worker(self, name: str) -> str:
        return f"{self.prefix}:worker:{name}"

    @property
    def status_counts(self) -> str:
        return f"{self.prefix}:status_counts"

    @property
    def failure_codes(self) -> str:
        return f"{self.prefix}:failure_codes"

    @property
    def webhook_attempt_counts(self) -> str:
        return f"{self.prefix}:webhook_attempt_counts"

    def stage_seconds(self, stage: str) -> str:
        return f"{self.prefix}:stage_seconds:{stage}"

    def delivery(self, delivery_id: str) -> str:
        return f"{self.prefix}:delivery:{delivery_id}"

    def job_deliveries(self, job_id: str) -> str:
        return f"{self.prefix}:job_deliveries:{job_id}"

    def job_events_once(self, job_id: str) -> str:
        return f"{self.prefix}:job_events_once:{job_id}"

    @property
    def webhooks_due(self) -> str:
        return f"{self.prefix}:webhooks_due"

    def job_delivering(self, job_id: str) -> str:
        return f"{self.prefix}:job_delivering:{job_id}"

    def owner_delivering(self, owner: str) -> str:
        return f"{self.prefix}:owner_delivering:{owner}"

    def idempotency(self, owner: str, idempotency_key: str) -> str:
        # Hashed, so a long or odd Idempotency-Key still makes a short, plain Redis key.
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
        return f"{self.prefix}:idempotency:{owner}:{digest}"

    def redeliveries(self, owner: str, minute: int) -> str:
        return f"{self.prefix}:redeliveries:{owner}:{minute}"

    def upload(self, upload_id: str) -> str:
        return f"{self.prefix}:upload:{upload_id}"

    @property
    def uploads_expiring(self) -> str:
        return f"{self.prefix}:uploads_expiring"

    def uploads_in_flight(self, owner: str) -> str:
        return f"{self.prefix}:uploads_in_flight:{owner}"

    @property
    def pose_cache_used(self) -> str:
        return f"{self.prefix}:pose_cache_used"

    @property
    def pose_cache_sizes(self) -> str:
        return f"{self.prefix}:pose_cache_sizes"


@dataclass(frozen=True)
class KeyedRedis:
    """One Redis client with its key formats and the finished-job retention, shared by the store's parts."""

    client: redis.Redis
    keys: RedisKeys = field(default_factory=RedisKeys)
    job_retention_s: int = DEFAULT_JOB_RETENTION_S  # a finished job's record (and its deliveries) is kept this long

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        socket_timeout_s: float = 5.0,
        job_retention_s: int = DEFAULT_JOB_RETENTION_S,
        prefix: str = "mm",
        sentinels: Sequence[tuple[str, int]] = (),
        sentinel_master: str = "mymaster",
    ) -> "KeyedRedis":
        """A client that decodes replies to str and never waits on a socket longer than ``socket_timeout_s``;
        with ``sentinels``, one that follows the master they name (see ``redis_client``)."""
        client = redis_client(
            url, socket_timeout_s=socket_timeout_s, sentinels=sentinels, sentinel_master=sentinel_master
        )
        return cls(client, RedisKeys(prefix), job_retention_s)

    @classmethod
    def from_settings(cls, settings: "Settings", *, socket_timeout_s: float = 5.0) -> "KeyedRedis":
        """The process's client for ``settings``: its URL or its sentinels, and its job retention."""
        return cls.from_url(
            settings.redis_url, socket_timeout_s=socket_timeout_s, job_retention_s=settings.job_retention_s,
            sentinels=settings.redis_sentinels, sentinel_master=settings.redis_sentinel_master,
        )  # fmt: skip


def redis_client(
    url: str, *, socket_timeout_s: float, sentinels: Sequence[tuple[str, int]] = (), sentinel_master: str = "mymaster"
) -> redis.Redis:
    """A client of ``url``, or, with ``sentinels``, of the master they name.

    The sentinel client asks the sentinels for the master's address on every new connection and drops its
    connections when the one it reached is no longer master, so after a failover the next command (or its
    retry) reaches the promoted replica without a restart. ``url`` still gives the database and password.
    """
    options = {"decode_responses": True, "socket_timeout": socket_timeout_s, "socket_connect_timeout": socket_timeout_s}
    if not sentinels:
        return redis.Redis.from_url(url, **options)
    parsed = redis.connection.parse_url(url)
    timeouts = {"socket_timeout": socket_timeout_s, "socket_connect_timeout": socket_timeout_s}
    sentinel = Sentinel(list(sentinels), sentinel_kwargs=timeouts)
    return sentinel.master_for(
        sentinel_master, db=parsed.get("db", 0), password=parsed.get("password"), username=parsed.get("username"),
        **options,
    )  # fmt: skip
