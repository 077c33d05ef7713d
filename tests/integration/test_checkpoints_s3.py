"""Both checkpoints on moto's S3 server through S3Storage: written, read back, overwritten, deleted; a write that
fails midway leaves the previous checkpoint whole; an unreadable one is ignored.

The storage talks to moto through tests/support/faulty_proxy.py, which drops chosen requests (a connection lost
while a checkpoint is stored).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from core.contract.params import JobParams
from core.execution.checkpoints import CheckpointStats, DenoisingCheckpoints, delete_checkpoints, denoise_checkpoint_key
from core.execution.result_checkpoint import RESULT_FILES, ResultCheckpoint, result_checkpoint_key
from core.execution.results import GeneratedFrames
from core.execution.upload import ResultFile
from core.settings import Settings
from core.storage import S3Storage
from tests.support.faulty_proxy import Fault, FaultyProxy, faulty_proxy
from tests.support.network import forbid_non_loopback_traffic
from tests.support.s3 import new_bucket, running_moto_server, use_dummy_aws_credentials

SHAPE = (1, 4, 4, 8, 8)
TOTAL_STEPS = 6
PARAMS = JobParams(seed=3, num_inference_steps=TOTAL_STEPS)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with running_moto_server() as endpoint:
        yield endpoint


@dataclass
class Bucket:
    storage: S3Storage  # through the proxy
    proxy: FaultyProxy
    admin: Any  # a plain boto3 client straight to moto
    name: str


@pytest.fixture
def bucket(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    forbid_non_loopback_traffic(monkeypatch)
    use_dummy_aws_credentials(monkeypatch, tmp_path)
    admin, name = new_bucket(moto_endpoint, "ckpt")
    with faulty_proxy(moto_endpoint) as (proxy, url):
        storage = S3Storage(Settings(data_dir=tmp_path / "data", s3_endpoint_url=url, s3_bucket=name))
        yield Bucket(storage, proxy, admin, name)


def _drop_puts(bucket: Bucket) -> None:
    """Every PUT from now on reaches the proxy whole, and its connection is closed before moto sees it."""
    bucket.proxy.add(Fault("PUT", f"/{bucket.name}/", "drop", times=1000))


def _keys(bucket: Bucket) -> list[str]:
    return [item["Key"] for item in bucket.admin.list_objects_v2(Bucket=bucket.name).get("Contents", [])]


def test_the_denoising_checkpoint_on_s3(bucket: Bucket, tmp_path: Path) -> None:
    def checkpoints() -> DenoisingCheckpoints:
        return DenoisingCheckpoints(bucket.storage, "job", "fp", tmp_path, interval_s=float("inf"))

    def save(step: int, latents: torch.Tensor) -> DenoisingCheckpoints:
        writer = checkpoints()
        writer.on_latents(step, TOTAL_STEPS, latents)
        writer.save_now()
        return writer

    first, second = torch.randn(SHAPE), torch.randn(SHAPE)
    assert save(2, first).stats.written == 1
    step, latents = checkpoints().load(torch.Size(SHAPE), TOTAL_STEPS) or (0, None)
    assert step == 2 and torch.equal(latents, first)

    save(4, second)  # overwritten
    step, latents = checkpoints().load(torch.Size(SHAPE), TOTAL_STEPS) or (0, None)
    assert step == 4 and torch.equal(latents, second)

    _drop_puts(bucket)
    assert save(5, first).stats.failed == 1  # the write failed midway: the step-4 checkpoint is still whole
    bucket.proxy.faults.clear()
    step, latents = checkpoints().load(torch.Size(SHAPE), TOTAL_STEPS) or (0, None)
    assert step == 4 and torch.equal(latents, second)
    other = DenoisingCheckpoints(bucket.storage, "job", "another fingerprint", tmp_path, interval_s=float("inf"))
    assert other.load(torch.Size(SHAPE), TOTAL_STEPS) is None

    bucket.admin.put_object(Bucket=bucket.name, Key=denoise_checkpoint_key("job"), Body=b"PK\x03\x04 garbage")
    assert checkpoints().load(torch.Size(SHAPE), TOTAL_STEPS) is None  # unreadable: ignored

    delete_checkpoints(bucket.storage, "job")
    assert _keys(bucket) == []
    assert checkpoints().load(torch.Size(SHAPE), TOTAL_STEPS) is None


def _result(tmp_path: Path, tag: bytes) -> tuple[GeneratedFrames, dict[str, ResultFile]]:
    generated = GeneratedFrames(np.zeros((5, 12, 10, 3), np.uint8), np.zeros((6, 12, 10, 3), np.uint8), PARAMS)
    files = {}
    for name in RESULT_FILES:
        path = tmp_path / f"{tag.decode()}-{name}"
        path.write_bytes(tag + name.encode() * 5000)
        files[name] = ResultFile(f"jobs/job/attempt-1/{name}", path, "video/mp4")
    return generated, files


def test_the_result_checkpoint_on_s3(bucket: Bucket, tmp_path: Path) -> None:
    def load(fingerprint: str = "fp") -> dict[str, bytes] | None:
        reader = ResultCheckpoint(bucket.storage, "job", tmp_path, CheckpointStats())
        archive = reader.fetch()
        kept = reader.load(archive, fingerprint) if archive is not None else None
        if kept is None:
            return None
        assert (kept.params, kept.num_frames, kept.height, kept.width) == (PARAMS, 5, 12, 10)
        assert [file.key for file in kept.to_upload("jobs/job/attempt-2/")] == [
            "jobs/job/attempt-2/pose.mp4", "jobs/job/attempt-2/output.mp4"
        ]  # fmt: skip
        return {name: path.read_bytes() for name, (path, _) in kept.files.items()}

    def save(tag: bytes) -> CheckpointStats:
        stats = CheckpointStats()
        ResultCheckpoint(bucket.storage, "job", tmp_path, stats).save("fp", *_result(tmp_path, tag))
        return stats

    def contents(tag: bytes) -> dict[str, bytes]:
        return {name: tag + name.encode() * 5000 for name in RESULT_FILES}

    assert load() is None  # none yet
    stats = save(b"first")
    assert (stats.written, stats.failed) == (1, 0) and stats.bytes_written > 10_000
    assert load() == contents(b"first")

    save(b"second")  # overwritten
    assert load() == contents(b"second")

    _drop_puts(bucket)
    assert save(b"third").failed == 1  # the write failed midway: the second one is still whole
    bucket.proxy.faults.clear()
    assert load() == contents(b"second")
    assert load("another fingerprint") is None

    bucket.admin.put_object(Bucket=bucket.name, Key=result_checkpoint_key("job"), Body=b"not a tar archive")
    assert load() is None  # unreadable: ignored

    delete_checkpoints(bucket.storage, "job")
    assert _keys(bucket) == []
    assert load() is None
