"""Uploads end to end: a real gateway under uvicorn and a real worker, results and uploads in moto's S3.

A multipart image and a direct (presigned S3 PUT) video make a job that succeeds within one
``Prefer: wait`` request; DELETE /jobs/{id} then removes its objects from the bucket.
"""

import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.fault_stack import QUICK, FaultStack, fault_stack
from tests.support.input_files import write_inputs
from tests.support.s3 import moto_bucket

pytestmark = pytest.mark.e2e

BUCKET = "uploads-e2e"
UPLOAD_CAP = 1_000_000


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    with moto_bucket(BUCKET) as client:
        yield client


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, s3: Any) -> Iterator[FaultStack]:
    with ExitStack() as stack:
        yield fault_stack(stack, tmp_path_factory.mktemp("uploads-e2e"), tiny_model_dir, ["w0"],
                          s3_endpoint_url=s3.meta.endpoint_url, s3_bucket=BUCKET,
                          upload_max_bytes=UPLOAD_CAP)  # fmt: skip


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_inputs(tmp_path_factory.mktemp("inputs"), num_frames=4)


def keys_under(s3: Any, prefix: str) -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def test_uploaded_inputs_make_a_job_that_succeeds_in_one_waiting_request_and_delete_removes_its_objects(
    services: FaultStack, s3: Any, inputs: Path
) -> None:
    client = services.client
    image = client.post("/uploads", files={"file": ("person.png", (inputs / "person.png").read_bytes())})
    assert image.status_code == 201, image.text
    video_bytes = (inputs / "drive.mp4").read_bytes()
    pending = client.post("/uploads", json={"filename": "drive.mp4", "content_type": "video/mp4",
                                            "size_bytes": len(video_bytes)}).json()  # fmt: skip
    target = pending["upload"]
    assert target["url"].startswith(s3.meta.endpoint_url + "/")  # straight to S3, not through the gateway
    put = httpx.request(
        target["method"], target["url"], content=video_bytes, headers=target["headers"], trust_env=False
    )
    assert put.is_success, put.text
    video = client.post(f"/uploads/{pending['id']}/complete")
    assert video.status_code == 200, video.text
    assert keys_under(s3, "incoming/") == []
    assert keys_under(s3, "uploads/") == sorted([f"uploads/{image.json()['id']}", f"uploads/{pending['id']}"])

    response = client.post(
        "/jobs", json={"image_url": image.json()["url"], "video_url": video.json()["url"], "params": QUICK},
        headers={"Prefer": "wait=60"}, timeout=70,
    )  # fmt: skip

    assert response.status_code == 200, f"{response.text}\n{services.services.logs()}"
    assert response.headers["Preference-Applied"] == "wait=60"
    job = response.json()
    assert job["status"] == "succeeded", job
    assert httpx.get(job["output"]["video_url"], trust_env=False).status_code == 200
    assert len(keys_under(s3, f"jobs/{job['id']}/")) == 2

    deleted = client.delete(f"/jobs/{job['id']}")

    assert deleted.status_code == 200 and deleted.json()["data_removed_at"] is not None
    assert keys_under(s3, f"jobs/{job['id']}/") == []
    assert httpx.get(job["output"]["video_url"], trust_env=False).status_code == 404
    assert client.get(f"/jobs/{job['id']}").json()["output"] is None


def test_an_upload_over_the_cap_is_refused_while_it_streams(services: FaultStack) -> None:
    """The 413 comes after the first bytes over the cap, while the client still has most of the body to send."""
    declared = 10 * UPLOAD_CAP
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.mp4\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode()  # fmt: skip
    address = urlsplit(services.services.base_url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as connection:
        connection.sendall(
            f"POST /uploads HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Length: {declared}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode() + head
        )
        sent = len(head)
        connection.sendall(b"\0" * (UPLOAD_CAP + 65536))  # a little over the cap, far from the declared length
        sent += UPLOAD_CAP + 65536
        answer = _read_response(connection)

    assert answer.startswith("HTTP/1.1 413"), answer
    assert "upload_too_large" in answer
    assert sent < declared / 5


def _read_response(connection: socket.socket) -> str:
    """The response's head and its Content-Length of body, however the server's writes were split."""
    received = b""
    while b"\r\n\r\n" not in received and (chunk := connection.recv(4096)):
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lengths = [line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    while lengths and len(body) < int(lengths[0]) and (chunk := connection.recv(4096)):
        body += chunk
    return (head + b"\r\n\r\n" + body).decode("latin-1")
