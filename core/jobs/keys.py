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

The Celery broker's queue lists (named after each queue, no prefix) are kombu's, not ours: see broker.py.
"""

import hashlib
from dataclasses import dataclass, field

import redis

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
    ) -> "KeyedRedis":
        """A client that decodes replies to str and never waits on a socket longer than ``socket_timeout_s``."""
        client = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s
        )
        return cls(client, RedisKeys(prefix), job_retention_s)
