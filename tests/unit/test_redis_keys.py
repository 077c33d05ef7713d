"""Every Redis key format, pinned: a renamed key strands what an older release wrote (data loss on upgrade).

Also the keyed client's options, which JobStore.from_url and the worker's clients share.
"""

from collections.abc import Callable

import pytest

from core.contract.records import DEFAULT_JOB_RETENTION_S
from core.jobs.keys import KeyedRedis, RedisKeys

KEYS = RedisKeys()
PINNED: dict[str, tuple[Callable[[], str], str]] = {
    "job": (lambda: KEYS.job("j1"), "mm:job:j1"),
    "seq": (lambda: KEYS.seq, "mm:seq"),
    "queued": (lambda: KEYS.queued, "mm:queued"),
    "running": (lambda: KEYS.running, "mm:running"),
    "owner": (lambda: KEYS.owner("o1"), "mm:owner:o1"),
    "lease": (lambda: KEYS.lease("j1"), "mm:lease:j1"),
    "worker": (lambda: KEYS.worker("gpu0@host"), "mm:worker:gpu0@host"),
    "status_counts": (lambda: KEYS.status_counts, "mm:status_counts"),
    "failure_codes": (lambda: KEYS.failure_codes, "mm:failure_codes"),
    "webhook_attempt_counts": (lambda: KEYS.webhook_attempt_counts, "mm:webhook_attempt_counts"),
    "stage_seconds": (lambda: KEYS.stage_seconds("denoising"), "mm:stage_seconds:denoising"),
    "delivery": (lambda: KEYS.delivery("msg_1"), "mm:delivery:msg_1"),
    "job_deliveries": (lambda: KEYS.job_deliveries("j1"), "mm:job_deliveries:j1"),
    "job_events_once": (lambda: KEYS.job_events_once("j1"), "mm:job_events_once:j1"),
    "webhooks_due": (lambda: KEYS.webhooks_due, "mm:webhooks_due"),
    "job_delivering": (lambda: KEYS.job_delivering("j1"), "mm:job_delivering:j1"),
    "owner_delivering": (lambda: KEYS.owner_delivering("o1"), "mm:owner_delivering:o1"),
    "redeliveries": (lambda: KEYS.redeliveries("o1", 29000000), "mm:redeliveries:o1:29000000"),
    "upload": (lambda: KEYS.upload("u1"), "mm:upload:u1"),
    "uploads_expiring": (lambda: KEYS.uploads_expiring, "mm:uploads_expiring"),
    "uploads_in_flight": (lambda: KEYS.uploads_in_flight("o1"), "mm:uploads_in_flight:o1"),
    "pose_cache_used": (lambda: KEYS.pose_cache_used, "mm:pose_cache_used"),
    "pose_cache_sizes": (lambda: KEYS.pose_cache_sizes, "mm:pose_cache_sizes"),
    # sha256("key-1"): the digest is part of the format, so a record bound before an upgrade still binds.
    "idempotency": (
        lambda: KEYS.idempotency("o1", "key-1"),
        "mm:idempotency:o1:be2974546978e3739e6d6da85c4be9f334ce32df2b9fd4b6ff1b55c0d57e9d44",
    ),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_redis_key_format_is_pinned(name: str) -> None:
    key, expected = PINNED[name]
    assert key() == expected


def test_every_redis_key_format_is_pinned() -> None:
    formats = {name for name in dir(RedisKeys) if not name.startswith("_")} - {"prefix"}
    assert formats == set(PINNED), "pin the new key format here (and document it in keys.py)"


def test_the_prefix_leads_every_key() -> None:
    staging = RedisKeys("staging")
    assert (staging.job("j1"), staging.webhooks_due) == ("staging:job:j1", "staging:webhooks_due")


def test_keyed_redis_from_url_decodes_and_bounds_socket_waits() -> None:
    db = KeyedRedis.from_url("redis://127.0.0.1:1/3", socket_timeout_s=2.5)  # connects on first use only
    options = db.client.connection_pool.connection_kwargs
    assert (options["decode_responses"], options["socket_timeout"], options["socket_connect_timeout"]) == (
        True, 2.5, 2.5,
    )  # fmt: skip
    assert (options["db"], db.keys, db.job_retention_s) == (3, RedisKeys("mm"), DEFAULT_JOB_RETENTION_S)
