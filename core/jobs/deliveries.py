"""Webhook deliveries in Redis: one record per (job, event), with every attempt, sent in order per job.

Keys (``keys.py``): a record per delivery (``delivery``), the job's ids in event order
(``job_deliveries``), the once-only event types already recorded (``job_events_once``: a second
``job.started`` after a lost worker's job is retried is not news to the receiver), the due set
(``webhooks_due``: the webhook worker's scheduler takes due ids from here and hands them to the
``webhooks`` Celery queue), a per-job lock (``job_delivering``) held while one delivery is attempted, and
a per-owner count of attempts in flight (``owner_delivering``), so one key's slow receivers cannot hold
every delivery thread.

The first three expire ``job_retention_s`` after the job's last delivery write (each write renews all
of them together), so they go with their job. An id left in the due set after its record expired is
dropped by the sender (``deliver_webhook`` unschedules ids it cannot read).

Why a due set rather than Celery countdowns: with Redis as the broker, a message with an ETA beyond
the visibility timeout is delivered again, and retries here wait up to 10 hours. The due set also
keeps the GPU worker free of any broker: recording an event is a few Redis writes.
"""

import logging
import secrets
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import cast

import redis
from pydantic import BaseModel, Field

from core.contract.events import EVENT_BY_STATUS, WebhookEvent
from core.contract.records import Job, utc_now
from core.contract.transitions import InvalidTransitionError
from core.errors import RedeliveryLimitError
from core.jobs.keys import KeyedRedis

logger = logging.getLogger(__name__)

# Takes up to ``limit`` due ids and pushes each one's due time ``lease_s`` ahead in the same step, so
# two schedulers never take the same id, and an id whose task got lost comes due again by itself.
_CLAIM_DUE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), id) end
return ids
"""
# A counting semaphore per owner: drop lapsed slots, then take one if fewer than ARGV[3] are held.
_TAKE_OWNER_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000))
return 1
"""
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class DeliveryState(StrEnum):
    pending = "pending"  # waiting for its turn or its next attempt
    delivered = "delivered"  # a 2xx answer
    failed = "failed"  # attempts used up, 410 Gone, or a URL that may not be called

    @property
    def is_final(self) -> bool:
        return self is not DeliveryState.pending


class DeliveryAttempt(BaseModel):
    at: datetime
    status_code: int | None = Field(default=None, description="The receiver's HTTP status; None if none came.")
    error: str | None = Field(default=None, description="Why no answer came (timeout, refused, forbidden address).")
    duration_s: float


class Delivery(BaseModel):
    id: str = Field(description="The webhook-id: the same on every attempt, so receivers can deduplicate.")
    job_id: str
    type: WebhookEvent
    url: str
    job: Job = Field(description="The job as it was when the event happened (output URLs are minted per attempt).")
    created_at: datetime = Field(default_factory=utc_now)
    state: DeliveryState = DeliveryState.pending
    attempts: list[DeliveryAttempt] = Field(default_factory=list)
    next_retry_at: datetime | None = None
    finished_at: datetime | None = None


def new_delivery_id() -> str:
    # Standard Webhooks: ids must not contain "." (it separates the signed parts).
    return f"msg_{secrets.token_hex(16)}"


class Deliveries:
    """Delivery records, the per-job order and the due set, in the job store's Redis."""

    def __init__(self, db: KeyedRedis) -> None:
        self.db = db
        self._redis, self._keys, self.retention_s = db.client, db.keys, db.job_retention_s
        self._claim_due = self._redis.register_script(_CLAIM_DUE)
        self._unlock = self._redis.register_script(_UNLOCK)
        self._take_owner_slot = self._redis.register_script(_TAKE_OWNER_SLOT)

    # Recording (the GPU worker and the gateway)
    def record_event(self, job: Job, event_type: WebhookEvent, *, now: datetime | None = None) -> Delivery | None:
        """Record ``event_type`` for ``job`` and make it due now; None when the job did not ask for it.

        Every event but ``job.progress`` is recorded at most once per job.
        """
        if job.webhook_url is None or event_type not in job.webhook_events:
            return None
        if event_type != "job.progress" and not self._redis.hsetnx(self._keys.job_events_once(job.id), event_type, 1):
            return None
        delivery = Delivery(id=new_delivery_id(), job_id=job.id, type=event_type, url=job.webhook_url, job=job)
        due = (now or utc_now()).timestamp()
        earlier_ids = cast(list[str], self._redis.lrange(self._keys.job_deliveries(job.id), 0, -1))
        with self._redis.pipeline() as pipe:  # the record exists before its id is due
            pipe.set(self._keys.delivery(delivery.id), delivery.model_dump_json(), ex=self.retention_s)
            pipe.rpush(self._keys.job_deliveries(job.id), delivery.id)
            self._renew_job_keys(pipe, job.id, earlier_ids)
            pipe.zadd(self._keys.webhooks_due, {delivery.id: due})
            pipe.execute()
        logger.info("job %s: webhook %s recorded as %s", job.id, event_type, delivery.id)
        return delivery

    def record_status_event(self, job: Job) -> Delivery | None:
        """Record the event that ``job``'s current status announces (started, succeeded, failed, canceled)."""
        event_type = EVENT_BY_STATUS.get(job.status)
        return None if event_type is None else self.record_event(job, event_type)

    # Reading
    def get(self, delivery_id: str) -> Delivery | None:
        raw = cast(str | None, self._redis.get(self._keys.delivery(delivery_id)))
        return None if raw is None else Delivery.model_validate_json(raw)

    def for_job(self, job_id: str) -> list[Delivery]:
        """The job's deliveries in event order."""
        ids = cast(list[str], self._redis.lrange(self._keys.job_deliveries(job_id), 0, -1))
        raws = cast(list[str | None], self._redis.mget([self._keys.delivery(i) for i in ids])) if ids else []
        return [Delivery.model_validate_json(raw) for raw in raws if raw is not None]

    def head(self, job_id: str) -> Delivery | None:
        """The job's oldest delivery not yet final: the only one of the job that may be attempted now."""
        return next((delivery for delivery in self.for_job(job_id) if not delivery.state.is_final), None)

    # Delivering (the webhook worker)
    def save(self, delivery: Delivery) -> None:
        ids = cast(list[str], self._redis.lrange(self._keys.job_deliveries(delivery.job_id), 0, -1))
        with self._redis.pipeline() as pipe:
            pipe.set(self._keys.delivery(delivery.id), delivery.model_dump_json(), ex=self.retention_s)
            self._renew_job_keys(pipe, delivery.job_id, ids)
            pipe.execute()

    def _renew_job_keys(self, pipe: redis.client.Pipeline, job_id: str, delivery_ids: list[str]) -> None:
        """Keep all of the job's delivery keys another ``retention_s``.

        All of them, not just the one written: a delivery waits unwritten behind a slow earlier one of
        the same job (events go in order), and must not expire while the job's deliveries go on.
        """
        keys = [self._keys.job_deliveries(job_id), self._keys.job_events_once(job_id)]
        for key in [*keys, *map(self._keys.delivery, delivery_ids)]:
            pipe.expire(key, self.retention_s)

    def count_attempt(self, *, delivered: bool) -> None:
        """Count one attempt's result (for /metrics: the webhook failure rate)."""
        self._redis.hincrby(self._keys.webhook_attempt_counts, "delivered" if delivered else "failed", 1)

    def attempt_counts(self) -> dict[str, int]:
        raw = cast(dict[str, str], self._redis.hgetall(self._keys.webhook_attempt_counts))
        return {result: int(raw.get(result, 0)) for result in ("delivered", "failed")}

    def backlog(self) -> int:
        """Deliveries waiting for an attempt (due now or scheduled for a retry)."""
        return cast(int, self._redis.zcard(self._keys.webhooks_due))

    def redeliver(self, delivery: Delivery, *, now: datetime | None = None) -> Delivery:
        """Send a finished delivery again: pending and due now, with the same ``webhook-id`` and body, its
        earlier attempts kept (the next attempt is appended; a failure retries on the schedule's remaining
        delays). Raises InvalidTransitionError while it is still pending."""
        if not delivery.state.is_final:
            raise InvalidTransitionError(f"delivery {delivery.id} is still being delivered")
        again = delivery.model_copy(update={"state": DeliveryState.pending, "next_retry_at": None, "finished_at": None})
        self.save(again)
        self.schedule(again.id, now or utc_now())
        logger.info("job %s: webhook %s %s to be delivered again", delivery.job_id, delivery.type, delivery.id)
        return again

    def count_redelivery(self, owner: str, *, limit: int, now: float) -> None:
        """Count one redelivery for ``owner`` in this minute. Raises RedeliveryLimitError past ``limit``."""
        minute = int(now // 60)
        key = self._keys.redeliveries(owner, minute)
        with self._redis.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            count, _ = pipe.execute()
        if int(count) > limit:
            retry_after_s = max(1, int((minute + 1) * 60 - now))
            raise RedeliveryLimitError(f"at most {limit} redeliveries a minute per API key", retry_after_s)

    def schedule(self, delivery_id: str, at: datetime) -> None:
        self._redis.zadd(self._keys.webhooks_due, {delivery_id: at.timestamp()})

    def unschedule(self, delivery_id: str) -> None:
        self._redis.zrem(self._keys.webhooks_due, delivery_id)

    def claim_due(self, *, now: datetime, lease_s: float, limit: int = 100) -> list[str]:
        """Ids due at ``now``; each is pushed ``lease_s`` ahead, so it comes back if its task is lost."""
        return cast(list[str], self._claim_due(keys=[self._keys.webhooks_due], args=[now.timestamp(), lease_s, limit]))

    def due_ids(self) -> Sequence[str]:
        return cast(list[str], self._redis.zrange(self._keys.webhooks_due, 0, -1))

    def lock_job(self, job_id: str, *, ttl_s: float) -> str | None:
        """Take the job's delivery lock (one attempt at a time per job); the token, or None if held."""
        token = secrets.token_hex(8)
        taken = self._redis.set(self._keys.job_delivering(job_id), token, nx=True, px=int(ttl_s * 1000))
        return token if taken else None

    def is_job_locked(self, job_id: str) -> bool:
        """Whether an attempt for one of the job's deliveries is under way (read-only)."""
        return bool(self._redis.exists(self._keys.job_delivering(job_id)))

    def unlock_job(self, job_id: str, token: str) -> None:
        self._unlock(keys=[self._keys.job_delivering(job_id)], args=[token])

    def take_owner_slot(self, owner: str, *, limit: int, ttl_s: float, now: datetime) -> str | None:
        """One of ``limit`` slots for the owner's attempts in flight; the token, or None if all are held.

        A slot lapses after ``ttl_s`` (a worker that died mid-attempt does not keep it).
        """
        token = secrets.token_hex(8)
        args: list[str | float] = [now.timestamp(), ttl_s, limit, token]
        taken = self._take_owner_slot(keys=[self._keys.owner_delivering(owner)], args=args)
        return token if taken else None

    def release_owner_slot(self, owner: str, token: str) -> None:
        self._redis.zrem(self._keys.owner_delivering(owner), token)
