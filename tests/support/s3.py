"""An in-process moto S3 server on 127.0.0.1 and dummy AWS credentials, for storage tests.

moto ignores presigned signatures and expiry (environment.md §6): check URLs' query parameters instead.
"""

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@contextlib.contextmanager
def running_moto_server() -> Iterator[str]:
    """Yield the endpoint URL of a moto server on 127.0.0.1 and a free port; stop it afterwards."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def use_dummy_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials from the environment only: no ~/.aws files, no instance metadata lookups."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def new_bucket(endpoint: str, prefix: str) -> tuple[Any, str]:
    """A fresh, uniquely named bucket on the moto server at ``endpoint``: a boto3 client straight to it, and the
    name (SigV4, path-style, as S3Storage talks). Dummy credentials must be set (``use_dummy_aws_credentials``)."""
    import uuid

    import boto3
    from botocore.config import Config

    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    admin = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )  # fmt: skip
    admin.create_bucket(Bucket=name)
    return admin, name


@contextlib.contextmanager
def moto_bucket(bucket: str, *, versioned: bool = False) -> Iterator[Any]:
    """A boto3 client of a fresh moto server holding ``bucket`` (keeping every version when ``versioned``)."""
    import boto3

    with running_moto_server() as url:
        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        client.create_bucket(Bucket=bucket)
        if versioned:
            client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        yield client
