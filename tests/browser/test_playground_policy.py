"""The playground's Content-Security-Policy names the S3 origin that presigned result URLs point at."""

from pathlib import Path

from core.settings import Settings
from service.routes.playground import content_security_policy


def directives(settings: Settings) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in content_security_policy(settings).split(";"))


def test_media_may_come_from_the_public_s3_endpoint_when_one_is_set(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, s3_endpoint_url="http://seaweedfs:8333",
                        s3_public_endpoint_url="https://s3.example.com:9000/ignored/path")  # fmt: skip
    policy = directives(settings)
    assert policy["img-src"] == policy["media-src"] == "'self' blob: https://s3.example.com:9000"
    assert policy["connect-src"] == "'self'" and policy["script-src"] == "'self'"


def test_media_may_come_from_the_s3_endpoint_when_clients_use_the_same_address(tmp_path: Path) -> None:
    policy = directives(Settings(data_dir=tmp_path, s3_endpoint_url="http://127.0.0.1:9000"))
    assert policy["media-src"] == "'self' blob: http://127.0.0.1:9000"


def test_with_local_storage_media_comes_from_the_gateway_only(tmp_path: Path) -> None:
    policy = directives(Settings(data_dir=tmp_path))
    assert policy["img-src"] == policy["media-src"] == "'self' blob:"
    assert policy["default-src"] == "'none'" and policy["object-src"] == "'none'"
