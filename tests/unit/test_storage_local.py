"""LocalStorage: keys, atomic writes, signed expiring /files URLs and the signing key kept under data_dir."""

import datetime as dt
import hashlib
import hmac
import os
import re
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core.errors import ConfigurationError, StorageError
from core.settings import Settings
from core.storage import LocalStorage, S3Storage, create_storage, public_base_url

NOW = 1_700_000_000.0
CONTENT = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    options: dict = {"data_dir": tmp_path / "data", "host": "127.0.0.1", "port": 8000}
    options.update(overrides)
    return Settings(**options)


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(make_settings(tmp_path, url_signing_key="test-signing-key"), clock=lambda: NOW)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "output.mp4"
    path.write_bytes(CONTENT)
    return path


def query_of(url: str) -> tuple[str, int, str]:
    """(key, expires, signature) as the gateway's /files route will read them."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return parts.path.removeprefix("/files/"), int(query["expires"][0]), query["signature"][0]


def test_put_file_stores_the_bytes_and_describes_them(storage: LocalStorage, source: Path) -> None:
    stored = storage.put_file("jobs/j1/output.mp4", source, "video/mp4")
    assert stored.key == "jobs/j1/output.mp4"
    assert stored.size_bytes == len(CONTENT)
    assert stored.sha256 == hashlib.sha256(CONTENT).hexdigest()
    assert stored.content_type == "video/mp4"
    path = storage.open_path("jobs/j1/output.mp4")
    assert path == storage.root / "jobs" / "j1" / "output.mp4"
    assert path.read_bytes() == CONTENT
    assert storage.exists("jobs/j1/output.mp4")
    assert os.listdir(path.parent) == ["output.mp4"]  # no temp file left behind


def test_put_file_replaces_atomically(storage: LocalStorage, source: Path, tmp_path: Path) -> None:
    storage.put_file("jobs/j1/output.mp4", source, "video/mp4")
    with storage.open_path("jobs/j1/output.mp4").open("rb") as reader:
        newer = tmp_path / "newer.mp4"
        newer.write_bytes(b"new bytes")
        storage.put_file("jobs/j1/output.mp4", newer, "video/mp4")
        # A reader of the old file still sees all of it: the new file was renamed in, not written over.
        assert reader.read() == CONTENT
    assert storage.open_path("jobs/j1/output.mp4").read_bytes() == b"new bytes"


def test_put_file_failure_leaves_the_old_object_and_no_temp_file(storage: LocalStorage, source: Path) -> None:
    storage.put_file("jobs/j1/output.mp4", source, "video/mp4")
    with pytest.raises(StorageError, match=re.escape("storing jobs/j1/output.mp4")) as caught:
        storage.put_file("jobs/j1/output.mp4", source.parent / "missing.mp4", "video/mp4")
    assert caught.value.code == "storage_error"
    assert os.listdir(storage.root / "jobs" / "j1") == ["output.mp4"]
    assert storage.open_path("jobs/j1/output.mp4").read_bytes() == CONTENT


@pytest.mark.parametrize(
    "key",
    ["", "../escape.mp4", "jobs/../../escape.mp4", "/etc/passwd", "jobs//out.mp4", "jobs/./out.mp4", ".hidden",
     "jobs/out.mp4/", "jobs\\out.mp4", "jobs/out put.mp4", "%2e%2e/out.mp4", "jobs/out.mp4\n", "a" * 513],
)  # fmt: skip
def test_keys_that_could_escape_or_need_escaping_are_refused(storage: LocalStorage, source: Path, key: str) -> None:
    with pytest.raises(ValueError, match="storage key"):
        storage.put_file(key, source, "video/mp4")
    with pytest.raises(ValueError, match="storage key"):
        storage.url_for(key, 600)
    with pytest.raises(ValueError, match="storage key"):
        storage.open_path(key)
    assert not storage.verify_signed_path(key, int(NOW) + 600, "0" * 64)
    assert not (storage.root.parent / "escape.mp4").exists()


def test_open_path_refuses_a_symlink_out_of_the_root(storage: LocalStorage, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not a result")
    (storage.root / "jobs").mkdir(parents=True)
    (storage.root / "jobs" / "link.mp4").symlink_to(secret)
    with pytest.raises(FileNotFoundError):
        storage.open_path("jobs/link.mp4")
    with pytest.raises(FileNotFoundError):
        storage.open_path("jobs/never-stored.mp4")


def test_url_for_signs_key_and_expiry_with_hmac_sha256(storage: LocalStorage) -> None:
    presigned = storage.url_for("jobs/j1/output.mp4", 600)
    expires = int(NOW) + 600
    expected = hmac.new(b"test-signing-key", f"jobs/j1/output.mp4\n{expires}".encode(), hashlib.sha256).hexdigest()
    assert presigned.url == f"http://127.0.0.1:8000/files/jobs/j1/output.mp4?expires={expires}&signature={expected}"
    assert presigned.expires_at == dt.datetime(2023, 11, 14, 22, 23, 20, tzinfo=dt.UTC)
    assert presigned.expires_at.timestamp() == expires


def test_verify_signed_path_accepts_only_the_untouched_unexpired_url(storage: LocalStorage) -> None:
    key, expires, signature = query_of(storage.url_for("jobs/j1/output.mp4", 600).url)
    assert storage.verify_signed_path(key, expires, signature)
    assert storage.verify_signed_path(key, expires, signature, now=expires - 1)
    assert not storage.verify_signed_path(key, expires, signature, now=expires)  # expired
    assert not storage.verify_signed_path(key, expires + 3600, signature)  # lifetime stretched
    assert not storage.verify_signed_path("jobs/j2/output.mp4", expires, signature)  # another job's file
    tampered = ("1" if signature[0] != "1" else "2") + signature[1:]
    assert not storage.verify_signed_path(key, expires, tampered)
    assert not storage.verify_signed_path(key, expires, signature.upper())
    assert not storage.verify_signed_path(key, expires, signature[:-1])
    assert not storage.verify_signed_path(key, expires, "é" * 64)


def test_signatures_from_another_key_do_not_verify(storage: LocalStorage, tmp_path: Path) -> None:
    other = LocalStorage(make_settings(tmp_path, url_signing_key="another-key"), clock=lambda: NOW)
    same = LocalStorage(make_settings(tmp_path / "elsewhere", url_signing_key="test-signing-key"), clock=lambda: NOW)
    key, expires, signature = query_of(storage.url_for("jobs/j1/output.mp4", 600).url)
    assert not other.verify_signed_path(key, expires, signature)
    assert same.verify_signed_path(key, expires, signature)


def test_generated_signing_key_is_private_and_shared_through_data_dir(tmp_path: Path) -> None:
    gateway = LocalStorage(make_settings(tmp_path), clock=lambda: NOW)
    key_file = tmp_path / "data" / "url_signing.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(bytes.fromhex(key_file.read_text())) == 32
    worker = LocalStorage(make_settings(tmp_path), clock=lambda: NOW)
    stranger = LocalStorage(make_settings(tmp_path / "other"), clock=lambda: NOW)
    key, expires, signature = query_of(worker.url_for("jobs/j1/output.mp4", 600).url)
    assert gateway.verify_signed_path(key, expires, signature)
    assert not stranger.verify_signed_path(key, expires, signature)
    assert sorted(os.listdir(tmp_path / "data")) == ["url_signing.key"]  # no temp file left


def test_a_corrupt_signing_key_file_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "url_signing.key").write_text("short")
    with pytest.raises(ConfigurationError, match=re.escape("url_signing.key")):
        LocalStorage(make_settings(tmp_path))


def test_url_for_uses_public_url_and_checks_ttl(tmp_path: Path) -> None:
    storage = LocalStorage(make_settings(tmp_path, public_url="https://animate.example/api/"), clock=lambda: NOW)
    assert storage.url_for("out.mp4", 60).url.startswith("https://animate.example/api/files/out.mp4?expires=")
    with pytest.raises(ValueError, match="ttl_s=0"):
        storage.url_for("out.mp4", 0)
    with pytest.raises(ValueError, match="ttl_s=604801"):
        storage.url_for("out.mp4", 604_801)


def test_public_base_url_defaults_to_the_bind_address(tmp_path: Path) -> None:
    assert public_base_url(make_settings(tmp_path)) == "http://127.0.0.1:8000"
    assert public_base_url(make_settings(tmp_path, host="::1", port=9000)) == "http://[::1]:9000"


def test_delete_and_exists(storage: LocalStorage, source: Path) -> None:
    storage.put_file("jobs/j1/output.mp4", source, "video/mp4")
    storage.delete("jobs/j1/output.mp4")
    assert not storage.exists("jobs/j1/output.mp4")
    storage.delete("jobs/j1/output.mp4")  # deleting twice is fine


def test_check_reports_an_unusable_results_directory(tmp_path: Path) -> None:
    LocalStorage(make_settings(tmp_path, url_signing_key="k")).check()
    (tmp_path / "blocked").mkdir()
    (tmp_path / "blocked" / "results").write_text("a file where the directory should be")
    with pytest.raises(StorageError, match="results directory"):
        LocalStorage(make_settings(tmp_path, data_dir=tmp_path / "blocked", url_signing_key="k")).check()


def test_create_storage_picks_the_backend_from_settings(tmp_path: Path) -> None:
    assert isinstance(create_storage(make_settings(tmp_path)), LocalStorage)
    s3 = create_storage(make_settings(tmp_path, s3_endpoint_url="http://127.0.0.1:9"))
    assert isinstance(s3, S3Storage)


segment = st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,20}", fullmatch=True)


@hypothesis_settings(max_examples=50, deadline=None)
@given(segments=st.lists(segment, min_size=1, max_size=4), ttl_s=st.integers(1, 604_800))
def test_every_minted_url_verifies_until_it_expires(tmp_path_factory: pytest.TempPathFactory,
                                                     segments: list[str], ttl_s: int) -> None:  # fmt: skip
    storage = LocalStorage(make_settings(tmp_path_factory.getbasetemp(), url_signing_key="k"), clock=lambda: NOW)
    key = "/".join(segments)
    url_key, expires, signature = query_of(storage.url_for(key, ttl_s).url)
    assert url_key == key
    assert storage.verify_signed_path(url_key, expires, signature, now=NOW + ttl_s - 1)
    assert not storage.verify_signed_path(url_key, expires, signature, now=NOW + ttl_s)


def test_signed_put_links_are_their_own_kind(storage: LocalStorage) -> None:
    upload = storage.presign_put("incoming/u1", 600, "image/png")
    key, expires, signature = query_of(upload.url)
    assert key == "incoming/u1" and upload.method == "PUT"
    assert storage.verify_signed_put(key, expires, signature)
    assert not storage.verify_signed_path(key, expires, signature)  # a write link never downloads
    download = storage.url_for("incoming/u1", 600)
    assert not storage.verify_signed_put(*query_of(download.url))  # nor a download link writes
    assert not storage.verify_signed_put(key, expires, signature, now=expires)


def test_move_refuses_a_file_replaced_after_it_was_read(storage: LocalStorage, source: Path, tmp_path: Path) -> None:
    from core.errors import StorageError

    storage.put_file("incoming/u1", source, "video/mp4")
    version = storage.get_file("incoming/u1", tmp_path / "read")
    storage.put_file("incoming/u1", source, "video/mp4")  # replaced (a new file, even with the same bytes)
    with pytest.raises(StorageError, match="changed"):
        storage.move("incoming/u1", "uploads/u1", version=version)
    version = storage.get_file("incoming/u1", tmp_path / "read")
    storage.move("incoming/u1", "uploads/u1", version=version)
    assert storage.exists("uploads/u1") and not storage.exists("incoming/u1")
    assert storage.delete_prefix("uploads/") == 1 and not storage.exists("uploads/u1")
