"""The service end to end with real processes: redis-server, moto's S3 server, the gateway under
uvicorn (`mimicmotion serve`), Celery workers (`mimicmotion worker`) on the tiny model, inputs from
a loopback HTTP server. All traffic stays on 127.0.0.1.
"""

import hashlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from core.jobs.store import JobStore
from core.video.decode import read_video_frames
from tests.support.input_files import InputServer
from tests.support.processes import ServiceProcess, http_ok, mimicmotion, service_env, wait_for
from tests.support.redis_server import free_port

pytestmark = pytest.mark.e2e

# Tiny sizes: 192x128 frames, 5 samples (9 frames at 24 fps, stride 2), 2 steps, one tile.
TINY_PARAMS = {
    "resolution": 128, "num_inference_steps": 2, "tile_size": 8, "tile_overlap": 2, "sample_stride": 2, "fps": 8,
}  # fmt: skip
NUM_DRIVING_FRAMES, NUM_FRAMES, HEIGHT, WIDTH = 9, 5, 192, 128
BUCKET = "e2e-results"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_client(s3_endpoint: str) -> Any:
    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    # A fresh, empty bucket per test.
    if any(bucket["Name"] == BUCKET for bucket in client.list_buckets().get("Buckets", [])):
        for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])
    else:
        client.create_bucket(Bucket=BUCKET)
    return client


class Stack:
    def __init__(self, base_url: str, processes: list[ServiceProcess]) -> None:
        self.base_url, self.processes = base_url, processes

    def logs(self) -> str:
        return "\n".join(process.logs() for process in self.processes)


def start_stack(
    stack: ExitStack, *, tmp_path: Path, redis_url: str, s3_endpoint: str, tiny_model_dir: Path, num_workers: int
) -> Stack:
    port = free_port()
    env = service_env({
        **AWS, "MIMICMOTION_REDIS_URL": redis_url, "MIMICMOTION_S3_ENDPOINT_URL": s3_endpoint,
        "MIMICMOTION_S3_BUCKET": BUCKET, "MIMICMOTION_MODEL_DIR": str(tiny_model_dir),
        "MIMICMOTION_DATA_DIR": str(tmp_path / "data"), "MIMICMOTION_DEVICE": "cpu", "MIMICMOTION_DTYPE": "float32",
        "MIMICMOTION_FETCH_ALLOWED_NETWORKS": "127.0.0.0/8",
    })  # fmt: skip
    gateway = stack.enter_context(
        mimicmotion("gateway", ["serve", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path)
    )
    processes = [gateway]
    for index in range(num_workers):
        name = f"w{index}@e2e"
        processes.append(stack.enter_context(mimicmotion(f"worker{index}", ["worker", "--name", name], env, tmp_path)))
    result = Stack(f"http://127.0.0.1:{port}", processes)

    def ready_with_all_workers() -> bool:
        for process in processes:
            assert process.is_running(), f"{process.name} exited early\n{result.logs()}"
        if not http_ok(f"{result.base_url}/readyz"):
            return False
        return len(httpx.get(f"{result.base_url}/readyz", trust_env=False).json()["workers"]) == num_workers

    wait_for(ready_with_all_workers, timeout_s=90, message="the gateway to be ready with every worker", interval_s=0.1)
    return result


def submit(client: httpx.Client, inputs_url: str, seed: int) -> dict[str, Any]:
    body = {
        "image_url": f"{inputs_url}/person.png", "video_url": f"{inputs_url}/drive.mp4",
        "params": {**TINY_PARAMS, "seed": seed},
    }  # fmt: skip
    response = client.post("/jobs", json=body)
    assert response.status_code == 202, response.text
    assert response.headers["location"].endswith(f"/jobs/{response.json()['id']}")
    return response.json()


def wait_until_finished(client: httpx.Client, job_ids: list[str], stack: Stack, timeout_s: float) -> list[dict]:
    jobs: dict[str, dict[str, Any]] = {}

    def all_finished() -> bool:
        for job_id in job_ids:
            if job_id not in jobs:
                response = client.get(f"/jobs/{job_id}")
                assert response.status_code == 200, f"{response.status_code} {response.text}\n{stack.logs()}"
                job = response.json()
                if job["status"] in ("succeeded", "failed", "canceled"):
                    jobs[job_id] = job
        return len(jobs) == len(job_ids)

    try:
        wait_for(all_finished, timeout_s=timeout_s, message=f"{len(job_ids)} jobs to finish", interval_s=0.25)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from None
    return [jobs[job_id] for job_id in job_ids]


def test_submit_poll_download_through_the_presigned_url(
    tmp_path: Path,
    redis_url: str,
    s3_endpoint: str,
    s3_client: Any,
    tiny_model_dir: Path,
    input_servers: Callable[[int], InputServer],
) -> None:
    with ExitStack() as stack:
        services = start_stack(
            stack, tmp_path=tmp_path, redis_url=redis_url, s3_endpoint=s3_endpoint,
            tiny_model_dir=tiny_model_dir, num_workers=1,
        )  # fmt: skip
        with httpx.Client(base_url=services.base_url, trust_env=False, timeout=10) as client:
            job_id = submit(client, input_servers(NUM_DRIVING_FRAMES).url, seed=7)["id"]
            (job,) = wait_until_finished(client, [job_id], services, timeout_s=90)

        assert job["status"] == "succeeded", f"{job}\n{services.logs()}"
        assert job["params"]["seed"] == 7 and job["progress"]["fraction"] == 1.0
        assert {"fetching", "pose", "denoising", "decoding", "encoding", "uploading"} <= set(job["timings"])
        output = job["output"]
        assert (output["num_frames"], output["width"], output["height"]) == (NUM_FRAMES, WIDTH, HEIGHT)
        assert output["video_url"].startswith(s3_endpoint + "/")  # presigned for the S3 server
        download = httpx.get(output["video_url"], trust_env=False)
        assert download.status_code == 200
        video_path = tmp_path / "result.mp4"
        video_path.write_bytes(download.content)
        video = read_video_frames(video_path, sample_stride=1)
        assert video.frames.shape == (NUM_FRAMES, HEIGHT, WIDTH, 3)
        assert video.info.fps == pytest.approx(8)
        pose = httpx.get(output["pose_video_url"], trust_env=False)
        assert pose.status_code == 200 and pose.content != download.content


def test_two_workers_twenty_jobs_each_run_exactly_once(
    tmp_path: Path,
    redis_url: str,
    s3_endpoint: str,
    s3_client: Any,
    tiny_model_dir: Path,
    input_servers: Callable[[int], InputServer],
) -> None:
    with ExitStack() as stack:
        services = start_stack(
            stack, tmp_path=tmp_path, redis_url=redis_url, s3_endpoint=s3_endpoint,
            tiny_model_dir=tiny_model_dir, num_workers=2,
        )  # fmt: skip
        with httpx.Client(base_url=services.base_url, trust_env=False, timeout=10) as client:
            inputs_url = input_servers(NUM_DRIVING_FRAMES).url
            job_ids = [submit(client, inputs_url, seed=seed)["id"] for seed in range(20)]
            jobs = wait_until_finished(client, job_ids, services, timeout_s=150)

    failed = [job for job in jobs if job["status"] != "succeeded"]
    assert not failed, f"{failed}\n{services.logs()}"
    # Exactly once: one claim per job, and one output pair per job in the bucket, none overwritten.
    stored = [JobStore.from_url(redis_url).get(job_id) for job_id in job_ids]
    assert [job.attempts for job in stored] == [1] * 20
    assert {job.worker for job in stored} == {"w0@e2e", "w1@e2e"}  # prefetch 1: both workers took jobs
    keys = sorted(item["Key"] for item in s3_client.list_objects_v2(Bucket=BUCKET, Prefix="jobs/").get("Contents", []))
    names = ("output.mp4", "pose.mp4")  # each job ran once: its first attempt's files only
    assert keys == sorted(f"jobs/{job_id}/attempt-1/{name}" for job_id in job_ids for name in names)
    for job in stored:
        assert job.output is not None
        body = s3_client.get_object(Bucket=BUCKET, Key=job.output.video_key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == job.output.sha256  # the object is the one this job wrote
    assert len({job.output.sha256 for job in stored if job.output}) == 20  # twenty seeds, twenty videos
