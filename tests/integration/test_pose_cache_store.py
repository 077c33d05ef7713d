"""PoseCacheStore on real Redis, with local storage and with moto's S3: round trips, LRU eviction under the bound."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.jobs.keys import KeyedRedis
from core.jobs.pose_cache import PoseCacheStore
from core.settings import Settings
from core.storage import LocalStorage, S3Storage, Storage
from tests.support.network import forbid_non_loopback_traffic
from tests.support.s3 import new_bucket, running_moto_server, use_dummy_aws_credentials

ENTRY_BYTES = 1000


class Clock:
    """Each reading one second later: every put and get has its own, ordered time."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with running_moto_server() as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Storage:
    if request.param == "local":
        return LocalStorage(Settings(data_dir=tmp_path / "data"))
    forbid_non_loopback_traffic(monkeypatch)
    use_dummy_aws_credentials(monkeypatch, tmp_path)
    endpoint = request.getfixturevalue("moto_endpoint")
    _, bucket = new_bucket(endpoint, "cache")
    return S3Storage(Settings(data_dir=tmp_path / "data", s3_endpoint_url=endpoint, s3_bucket=bucket))


def make_store(redis_url: str, storage: Storage, tmp_path: Path, max_bytes: int) -> PoseCacheStore:
    return PoseCacheStore(
        KeyedRedis.from_url(redis_url), storage, max_bytes=max_bytes, scratch=tmp_path / "scratch", clock=Clock()
    )


def entry(tag: int) -> bytes:
    return bytes([tag]) * ENTRY_BYTES


def test_a_stored_entry_reads_back_and_an_unknown_one_is_none(
    redis_url: str, storage: Storage, tmp_path: Path
) -> None:
    store = make_store(redis_url, storage, tmp_path, max_bytes=10 * ENTRY_BYTES)
    store.put("key-a/f1", entry(1))
    assert store.get("key-a/f1") == entry(1)
    assert store.get("key-b/f1") is None  # another scope, the same fingerprint
    assert storage.exists("pose-cache/key-a/f1.npz")
    assert store.total_bytes() == ENTRY_BYTES


def test_eviction_keeps_the_cache_under_its_bound_dropping_the_least_recently_used(
    redis_url: str, storage: Storage, tmp_path: Path
) -> None:
    store = make_store(redis_url, storage, tmp_path, max_bytes=3 * ENTRY_BYTES)
    for tag in (1, 2, 3):
        assert store.put(f"shared/f{tag}", entry(tag)) == 0
    assert store.get("shared/f1") == entry(1)  # f1 used again: f2 is now the least recently used

    assert store.put("shared/f4", entry(4)) == 1
    assert store.names() == ["shared/f3", "shared/f1", "shared/f4"]
    assert store.total_bytes() == 3 * ENTRY_BYTES <= store.max_bytes
    assert not storage.exists("pose-cache/shared/f2.npz")  # its bytes went with it
    assert store.get("shared/f2") is None

    # A larger entry makes room by evicting as many as it takes.
    assert store.put("shared/f5", bytes(2 * ENTRY_BYTES + 1)) == 3
    assert store.names() == ["shared/f5"] and store.total_bytes() <= store.max_bytes
    assert [storage.exists(f"pose-cache/shared/f{tag}.npz") for tag in (1, 3, 4, 5)] == [False, False, False, True]


def test_an_entry_larger_than_the_bound_is_not_stored(redis_url: str, storage: Storage, tmp_path: Path) -> None:
    store = make_store(redis_url, storage, tmp_path, max_bytes=ENTRY_BYTES)
    store.put("shared/small", entry(1))
    assert store.put("shared/huge", bytes(ENTRY_BYTES + 1)) == 0
    assert store.names() == ["shared/small"] and not storage.exists("pose-cache/shared/huge.npz")


def test_an_indexed_entry_whose_bytes_are_gone_is_a_miss_and_leaves_the_index(
    redis_url: str, storage: Storage, tmp_path: Path
) -> None:
    store = make_store(redis_url, storage, tmp_path, max_bytes=10 * ENTRY_BYTES)
    store.put("shared/f1", entry(1))
    storage.delete("pose-cache/shared/f1.npz")  # another worker evicting it, say
    assert store.get("shared/f1") is None
    assert store.names() == [] and store.total_bytes() == 0
