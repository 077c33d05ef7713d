"""WorkerHeartbeats against a real Redis: live workers, withdrawal, expiry and the stored key layout."""

import json

import pytest

from core.jobs.heartbeats import WorkerHeartbeats
from core.jobs.keys import KeyedRedis


@pytest.fixture
def heartbeats(redis_url: str) -> WorkerHeartbeats:
    return WorkerHeartbeats(KeyedRedis.from_url(redis_url))


def test_heartbeats_list_live_workers_until_removed(heartbeats: WorkerHeartbeats) -> None:
    heartbeats.record("gpu0@host", {"device": "cpu"}, ttl_s=30)
    heartbeats.record("gpu1@host", {"device": "cuda", "gpu": 1}, ttl_s=30)
    assert heartbeats.live() == {"gpu0@host": {"device": "cpu"}, "gpu1@host": {"device": "cuda", "gpu": 1}}
    heartbeats.remove("gpu0@host")
    assert heartbeats.live() == {"gpu1@host": {"device": "cuda", "gpu": 1}}


def test_a_heartbeat_expires_after_its_ttl(heartbeats: WorkerHeartbeats) -> None:
    heartbeats.record("gpu0@host", {}, ttl_s=30)
    client = heartbeats.db.client
    assert 0 < int(client.ttl("mm:worker:gpu0@host")) <= 30
    client.expire("mm:worker:gpu0@host", 0)  # what 30 s without a beat looks like, without waiting for it
    assert heartbeats.live() == {}


def test_heartbeats_read_what_an_older_release_wrote(heartbeats: WorkerHeartbeats) -> None:
    client = heartbeats.db.client
    client.set("mm:worker:worker42@old-host", json.dumps({"tiny_model": True}), ex=30)
    client.set("mm:job:not-a-worker", "{}")  # other keys of the store are not workers
    assert heartbeats.live() == {"worker42@old-host": {"tiny_model": True}}


def test_heartbeats_of_another_prefix_are_not_listed(redis_url: str, heartbeats: WorkerHeartbeats) -> None:
    other = WorkerHeartbeats(KeyedRedis.from_url(redis_url, prefix="staging"))
    other.record("gpu0@host", {}, ttl_s=30)
    assert heartbeats.live() == {} and other.live() == {"gpu0@host": {}}
