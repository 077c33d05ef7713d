"""S3Storage against moto's S3 server on 127.0.0.1: uploads, presigned GETs, public endpoint, check()."""

import datetime as dt
import hashlib
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from core.errors import StorageError
from core.settings import Settings
from core.storage import S3Storage
from tests.support.network import forbid_non_loopback_traffic
from tests.support.s3 import running_moto_server, use_dummy_aws_credentials

NOW = 1_700_000_000.0
CONTENT = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 16


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with running_moto_server() as endpoint:
        yield endpoint


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    forbid_non_loopback_traffic(monkeypatch)
    use_dummy_aws_credentials(monkeypatch, tmp_path)


@pytest.fixture
def bucket(moto_endpoint: str) -> str:
    """A fresh bucket per test, made with a plain boto3 client (not the code under test)."""
    name = f"results-{uuid.uuid4().hex[:12]}"
    admin = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    admin.create_bucket(Bucket=name)
    return name


def make_storage(tmp_path: Path, endpoint: str, bucket: str, **overrides: object) -> S3Storage:
    transfer_config = overrides.pop("transfer_config", None)
    options: dict = {"data_dir": tmp_path / "data", "s3_endpoint_url": endpoint, "s3_bucket": bucket}
    options.update(overrides)
    return S3Storage(Settings(**options), transfer_config=transfer_config, clock=lambda: NOW)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "output.mp4"
    path.write_bytes(CONTENT)
    return path


def head(endpoint: str, bucket: str, key: str) -> dict:
    admin = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    return admin.head_object(Bucket=bucket, Key=key)


def test_put_file_uploads_with_content_type_and_digest(
    tmp_path: Path, moto_endpoint: str, bucket: str, source: Path
) -> None:
    storage = make_storage(tmp_path, moto_endpoint, bucket)
    stored = storage.put_file("jobs/j1/output.mp4", source, "video/mp4")
    assert stored.size_bytes == len(CONTENT)
    assert stored.sha256 == hashlib.sha256(CONTENT).hexdigest()
    assert storage.exists("jobs/j1/output.mp4")
    assert not storage.exists("jobs/j2/output.mp4")
    meta = head(moto_endpoint, bucket, "jobs/j1/output.mp4")
    assert meta["ContentType"] == "video/mp4"
    assert meta["ContentLength"] == len(CONTENT)
    assert meta["Metadata"] == {"sha256": stored.sha256}
    assert "-" not in meta["ETag"]  # small file: one plain PUT
    storage.delete("jobs/j1/output.mp4")
    assert not storage.exists("jobs/j1/output.mp4")


def test_presigned_url_downloads_the_same_bytes_and_carries_the_ttl(
    tmp_path: Path, moto_endpoint: str, bucket: str, source: Path
) -> None:
    storage = make_storage(tmp_path, moto_endpoint, bucket)
    storage.put_file("jobs/j1/output.mp4", source, "video/mp4")
    presigned = storage.url_for("jobs/j1/output.mp4", 900)
    parts = urlsplit(presigned.url)
    query = parse_qs(parts.query)
    # moto checks neither signature nor expiry, so the expiry is checked where it is written.
    assert query["X-Amz-Expires"] == ["900"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert f"{parts.scheme}://{parts.netloc}" == moto_endpoint
    assert parts.path == f"/{bucket}/jobs/j1/output.mp4"  # path-style addressing
    assert presigned.expires_at == dt.datetime.fromtimestamp(NOW + 900, tz=dt.UTC)
    response = httpx.get(presigned.url, trust_env=False)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == hashlib.sha256(CONTENT).hexdigest()
    assert response.headers["content-type"] == "video/mp4"


def test_presigned_url_is_signed_for_the_public_endpoint(
    tmp_path: Path, moto_endpoint: str, bucket: str, source: Path
) -> None:
    port = urlsplit(moto_endpoint).port
    public = f"http://localhost:{port}"
    storage = make_storage(tmp_path, moto_endpoint, bucket, s3_public_endpoint_url=public)
    storage.put_file("jobs/j1/output.mp4", source, "video/mp4")  # uploads still go to the internal endpoint
    url = storage.url_for("jobs/j1/output.mp4", 600).url
    assert url.startswith(f"{public}/{bucket}/jobs/j1/output.mp4?")
    # The host is inside the SigV4 signature: a URL signed for the internal endpoint differs.
    internal_url = make_storage(tmp_path, moto_endpoint, bucket).url_for("jobs/j1/output.mp4", 600).url
    assert parse_qs(urlsplit(url).query)["X-Amz-Signature"] != parse_qs(urlsplit(internal_url).query)["X-Amz-Signature"]
    assert httpx.get(url, trust_env=False).content == CONTENT


def test_multipart_upload_above_the_threshold(tmp_path: Path, moto_endpoint: str, bucket: str, source: Path) -> None:
    # One part of 5 MiB holds the whole file: the last part of a multipart upload may be small.
    tiny_threshold = TransferConfig(multipart_threshold=1024, multipart_chunksize=5 * 1024 * 1024)
    storage = make_storage(tmp_path, moto_endpoint, bucket, transfer_config=tiny_threshold)
    stored = storage.put_file("jobs/j1/output.mp4", source, "video/mp4")
    meta = head(moto_endpoint, bucket, "jobs/j1/output.mp4")
    assert meta["ETag"].strip('"').endswith("-1")  # multipart ETags end in -<number of parts>
    assert meta["ContentType"] == "video/mp4"
    assert httpx.get(storage.url_for(stored.key, 60).url, trust_env=False).content == CONTENT


def test_check_passes_for_an_existing_bucket(tmp_path: Path, moto_endpoint: str, bucket: str) -> None:
    make_storage(tmp_path, moto_endpoint, bucket).check()


def test_check_fails_clearly_on_a_missing_bucket(tmp_path: Path, moto_endpoint: str) -> None:
    storage = make_storage(tmp_path, moto_endpoint, "no-such-bucket")
    expected = f"bucket 'no-such-bucket' does not exist at {moto_endpoint}"
    with pytest.raises(StorageError, match=re.escape(expected)) as caught:
        storage.check()
    assert caught.value.code == "storage_error"


def test_check_fails_clearly_when_nothing_listens(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    storage = make_storage(tmp_path, endpoint, "results")
    with pytest.raises(StorageError, match=re.escape(f"cannot reach S3 at {endpoint}")):
        storage.check()


def test_upload_failures_are_storage_errors(tmp_path: Path, moto_endpoint: str, source: Path) -> None:
    storage = make_storage(tmp_path, moto_endpoint, "no-such-bucket")
    with pytest.raises(StorageError, match=re.escape("uploading jobs/j1/output.mp4 to s3://no-such-bucket")) as caught:
        storage.put_file("jobs/j1/output.mp4", source, "video/mp4")
    assert caught.value.__cause__ is not None
    with pytest.raises(ValueError, match="storage key"):
        storage.put_file("../output.mp4", source, "video/mp4")


def test_get_file_move_and_delete_prefix_for_uploads_and_data_removal(
    tmp_path: Path, moto_endpoint: str, bucket: str, source: Path
) -> None:
    from core.storage import MissingObjectError

    storage = make_storage(tmp_path, moto_endpoint, bucket)
    storage.put_file("incoming/u1", source, "video/mp4")
    version = storage.get_file("incoming/u1", tmp_path / "read")
    assert (tmp_path / "read").read_bytes() == CONTENT

    storage.put_file("incoming/u1", tmp_path / "read", "video/mp4")  # same bytes: S3's ETag is the same
    storage.move("incoming/u1", "uploads/u1", version=version)
    assert not storage.exists("incoming/u1") and storage.exists("uploads/u1")
    with pytest.raises(MissingObjectError):
        storage.get_file("incoming/u1", tmp_path / "missing")
    # (moto ignores CopySourceIfMatch, so a replaced object's refusal is tested on local storage only.)

    for key in ("jobs/j1/attempt-1/output.mp4", "jobs/j1/attempt-2/pose.mp4", "jobs/j10/output.mp4"):
        storage.put_file(key, source, "video/mp4")
    assert storage.delete_prefix("jobs/j1/") == 2
    assert not storage.exists("jobs/j1/attempt-2/pose.mp4") and storage.exists("jobs/j10/output.mp4")


def test_presign_put_signs_the_content_type_for_the_public_endpoint(
    tmp_path: Path, moto_endpoint: str, bucket: str
) -> None:
    storage = make_storage(tmp_path, moto_endpoint, bucket, s3_public_endpoint_url="http://files.example.com")
    upload = storage.presign_put("incoming/u1", 600, "video/mp4")
    parts = urlsplit(upload.url)
    assert (parts.netloc, parts.path, upload.method) == ("files.example.com", f"/{bucket}/incoming/u1", "PUT")
    assert "content-type" in parse_qs(parts.query)["X-Amz-SignedHeaders"][0]
    assert upload.headers == {"Content-Type": "video/mp4"}
    assert upload.expires_at == dt.datetime.fromtimestamp(NOW + 600, tz=dt.UTC)
