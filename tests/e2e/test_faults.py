"""Faults on a real stack: a worker killed mid-job, Redis restarted, S3 down during upload, SIGTERM.

Every process is real (redis-server, moto's S3 server, the gateway and workers as subprocesses under the
loopback-only guard); inputs come from a loopback file server. Leases are short (lease_s=2) so the reaper
acts within seconds; production keeps 60 s.
"""

import signal
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from core.jobs.store import JobStore
from tests.support.fault_stack import FAST_REAPER, QUICK, SLOW, FaultStack, denoising, fault_stack, kill, submit
from tests.support.processes import wait_for
from tests.support.redis_server import free_port, redis_server
from tests.support.service_stack import Stack, stack_env, start_stack, wait_for_terminal

pytestmark = pytest.mark.e2e

BUCKET = "faults"


def test_worker_killed_mid_job_is_retried_on_the_other_worker_once(
    tmp_path: Path, tiny_model_dir: Path, short_inputs_url: str
) -> None:
    with ExitStack() as stack:
        faults = fault_stack(stack, tmp_path, tiny_model_dir, ["w0", "w1"])
        services, store, client = faults.services, faults.store, faults.client
        job_id = submit(client, short_inputs_url, SLOW, seed=3)
        wait_for(lambda: denoising(store, job_id), timeout_s=60, message="the job to be denoising", interval_s=0.05)
        victim = str(store.get(job_id).worker).split("@")[0]
        survivor = "w1" if victim == "w0" else "w0"

        kill(services.workers[victim])
        job = wait_for_terminal(client, [job_id], timeout_s=120, stack=services)[job_id]

        record = store.get(job_id)
        assert job["status"] == "succeeded", f"{job}\n{services.logs()}"
        assert (record.attempts, record.worker) == (2, f"{survivor}@stack")  # started twice, finished once
        assert store.running_ids() == [] and store.queue_length() == 0  # nothing stuck, nothing left over
        assert (tmp_path / "data").exists()
        assert services.workers[survivor].logs(100_000).count(f"job {job_id}: succeeded") == 1


def test_job_that_keeps_killing_workers_fails_after_max_attempts(
    tmp_path: Path, tiny_model_dir: Path, short_inputs_url: str
) -> None:
    with ExitStack() as stack:
        faults = fault_stack(stack, tmp_path, tiny_model_dir, ["a0"], max_job_attempts=2)
        services, store, client = faults.services, faults.store, faults.client
        job_id = submit(client, short_inputs_url, SLOW, seed=4)
        for attempt in (1, 2):
            wait_for(lambda n=attempt: denoising(store, job_id) and store.get(job_id).attempts == n, timeout_s=90,
                     message=f"attempt {attempt} to be denoising", interval_s=0.05)  # fmt: skip
            worker = services.workers.pop(f"a{attempt - 1}")
            kill(worker)
            services.start_worker(f"a{attempt}")  # its reaper hands the job back (or fails it)

        job = wait_for_terminal(client, [job_id], timeout_s=60, stack=services)[job_id]

        assert (job["status"], job["error"]["code"]) == ("failed", "worker_lost"), job
        assert "stopped responding 2 times" in job["error"]["message"]
        assert store.running_ids() == []


def test_redis_restart_answers_503_then_recovers_and_loses_no_accepted_job(
    tmp_path: Path, tiny_model_dir: Path, short_inputs_url: str
) -> None:
    port = free_port()
    with ExitStack() as stack:
        first_redis = ExitStack()
        redis_url = first_redis.enter_context(redis_server(tmp_path, port=port, appendonly=True))
        env = stack_env(redis_url=redis_url, data_dir=tmp_path / "data", model_dir=tiny_model_dir, **FAST_REAPER)
        services = start_stack(stack, env, tmp_path, workers=["r0"])
        client = stack.enter_context(httpx.Client(base_url=services.base_url, trust_env=False, timeout=30))
        store = JobStore.from_url(redis_url)
        eight_steps = {**QUICK, "num_inference_steps": 8}
        job_ids = [submit(client, short_inputs_url, eight_steps, seed=seed) for seed in range(6)]
        wait_for(lambda: denoising(store, job_ids[1]), timeout_s=60, message="the second job to be denoising",
                 interval_s=0.05)  # fmt: skip

        # redis-server stops (SIGTERM: the AOF is flushed) with one job running and four queued, and stays
        # down until the worker has noticed (a failed reconnect, or a failed ack).
        first_redis.close()
        down = client.get(f"/jobs/{job_ids[-1]}")
        refused = client.post("/jobs", json={"image_url": f"{short_inputs_url}/person.png",
                                             "video_url": f"{short_inputs_url}/drive.mp4"})  # fmt: skip
        wait_for(lambda: _noticed_outage(services.workers["r0"].logs(100_000)), timeout_s=30,
                 message="the worker to notice Redis is gone", interval_s=0.1)  # fmt: skip
        assert (down.status_code, down.json()["error"]["code"]) == (503, "store_unavailable"), down.text
        assert (refused.status_code, refused.json()["error"]["code"]) == (503, "store_unavailable"), refused.text
        assert services.gateway.is_running() and services.workers["r0"].is_running()

        stack.enter_context(redis_server(tmp_path, port=port, appendonly=True))  # same port, same AOF
        wait_for(lambda: client.get(f"/jobs/{job_ids[-1]}").status_code == 200, timeout_s=30,
                 message="the gateway to reach Redis again", interval_s=0.2)  # fmt: skip
        job_ids.append(submit(client, short_inputs_url, QUICK, seed=99))  # accepted after the restart
        # Only the first worker runs them: restarted in place, Redis closes its sockets, and the worker's
        # consumer reconnects by itself (RELIABILITY.md, "Redis restarted or replaced"; a worker whose consumer
        # stalled would instead exit with 75, and this test would time out waiting).
        jobs = wait_for_terminal(client, job_ids, timeout_s=180, stack=services)

        assert [jobs[job_id]["status"] for job_id in job_ids] == ["succeeded"] * 7, f"{jobs}\n{services.logs()}"
        assert store.running_ids() == []
        assert store.get(job_ids[0]).attempts == 1
        assert services.workers["r0"].stop(signal.SIGTERM) == 0, services.logs()  # still the same, healthy process


def _noticed_outage(log: str) -> bool:
    # The consumer's reconnect attempts, or (when it freezes) the failed ack of the job it was running.
    return "Cannot connect to redis" in log or "Couldn't ack" in log


class RestartableS3:
    """moto's S3 server on a fixed loopback port that can be stopped (connections refused) and started again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: ThreadedMotoServer | None = None

    def start(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        assert self.server is not None and self.server._server is not None
        self.server.stop()
        self.server._server.server_close()  # stop() leaves the socket listening; close it so connects fail
        self.server = None

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip


@pytest.fixture
def s3() -> Iterator[RestartableS3]:
    server = RestartableS3()
    server.start()
    # moto keeps its buckets per process, not per server: start from an empty store, not the last test's.
    httpx.post(f"{server.url}/moto-api/reset", timeout=10).raise_for_status()
    server.client().create_bucket(Bucket=BUCKET)
    try:
        yield server
    finally:
        if server.server is not None:
            server.stop()


def s3_stack(
    stack: ExitStack, tmp_path: Path, tiny_model_dir: Path, s3: RestartableS3, workers: tuple[str, ...] = ("s0",)
) -> FaultStack:
    return fault_stack(stack, tmp_path, tiny_model_dir, list(workers), s3_endpoint_url=s3.url, s3_bucket=BUCKET,
                       upload_attempts=3, upload_backoff_s=1.0)  # fmt: skip


def storing_in_the_background(services: Stack, store: JobStore, job_id: str) -> str | None:
    """The worker whose finisher is retrying this job's upload, once its task has returned."""
    worker = str(store.get(job_id).worker).split("@")[0]
    logs = services.workers[worker].logs(100_000) if worker in services.workers else ""
    done = "Task mimicmotion.animate[" in logs and "succeeded in" in logs  # Celery's line: the task returned
    return worker if done and "failed (try 1 of 3)" in logs else None


def test_s3_down_during_upload_fails_cleanly_after_retries(
    tmp_path: Path, tiny_model_dir: Path, short_inputs_url: str, s3: RestartableS3
) -> None:
    with ExitStack() as stack:
        faults = s3_stack(stack, tmp_path, tiny_model_dir, s3)
        services, client = faults.services, faults.client
        s3.stop()
        job_id = submit(client, short_inputs_url, QUICK, seed=5)
        job = wait_for_terminal(client, [job_id], timeout_s=120, stack=services)[job_id]
        s3.start()

        assert (job["status"], job["error"]["code"]) == ("failed", "storage_error"), job
        assert "failed after 3 tries" in job["error"]["message"], job["error"]["message"]
        assert job["output"] is None
        assert s3.client().list_objects_v2(Bucket=BUCKET, Prefix="jobs/").get("KeyCount") == 0  # no partial result left
        assert services.workers["s0"].logs(100_000).count("failed (try") == 2  # tries 1 and 2 waited, 3 gave up


def test_s3_back_during_the_backoff_stores_both_files(
    tmp_path: Path, tiny_model_dir: Path, short_inputs_url: str, s3: RestartableS3
) -> None:
    with ExitStack() as stack:
        faults = s3_stack(stack, tmp_path, tiny_model_dir, s3)
        services, client = faults.services, faults.client
        s3.stop()
        job_id = submit(client, short_inputs_url, QUICK, seed=6)
        wait_for(lambda: "failed (try 1 of 3)" in services.workers["s0"].logs(100_000), timeout_s=90,
                 message="the first upload try to fail", interval_s=0.05)  # fmt: skip
        s3.start()
        job = wait_for_terminal(client, [job_id], timeout_s=60, stack=services)[job_id]

        assert job["status"] == "succeeded", f"{job}\n{services.logs()}"
        keys = sorted(item["Key"] for item in s3.client().list_objects_v2(Bucket=BUCKET, Prefix="jobs/")["Contents"])
        assert keys == [f"jobs/{job_id}/attempt-1/output.mp4", f"jobs/{job_id}/attempt-1/pose.mp4"]


def test_worker_killed_while_storing_a_result_in_the_background_has_the_job_run_again(
    tmp_path: Path, tiny_model_dir: Path, short_inputs_url: str, s3: RestartableS3
) -> None:
    with ExitStack() as stack:
        faults = s3_stack(stack, tmp_path, tiny_model_dir, s3, workers=("b0", "b1"))
        services, store, client = faults.services, faults.store, faults.client
        s3.stop()
        job_id = submit(client, short_inputs_url, QUICK, seed=9)
        # Its task message is acknowledged; only the lease still says the job is this worker's.
        victim = wait_for(lambda: storing_in_the_background(services, store, job_id), timeout_s=90,
                          message="the upload to be retried after the task returned", interval_s=0.05)  # fmt: skip
        survivor = "b1" if victim == "b0" else "b0"

        kill(services.workers[victim])
        s3.start()
        job = wait_for_terminal(client, [job_id], timeout_s=120, stack=services)[job_id]

        record = store.get(job_id)
        assert job["status"] == "succeeded", f"{job}\n{services.logs()}"
        assert (record.attempts, record.worker) == (2, f"{survivor}@stack")
        keys = sorted(item["Key"] for item in s3.client().list_objects_v2(Bucket=BUCKET, Prefix="jobs/")["Contents"])
        assert keys == [f"jobs/{job_id}/attempt-2/output.mp4", f"jobs/{job_id}/attempt-2/pose.mp4"]


def test_sigterm_waits_for_a_result_still_being_stored_in_the_background(
    tmp_path: Path, tiny_model_dir: Path, short_inputs_url: str, s3: RestartableS3
) -> None:
    with ExitStack() as stack:
        faults = s3_stack(stack, tmp_path, tiny_model_dir, s3)
        services, store, client = faults.services, faults.store, faults.client
        s3.stop()
        job_id = submit(client, short_inputs_url, QUICK, seed=10)
        wait_for(lambda: storing_in_the_background(services, store, job_id), timeout_s=90,
                 message="the upload to be retried after the task returned", interval_s=0.05)  # fmt: skip

        worker = services.workers["s0"]
        worker.process.send_signal(signal.SIGTERM)  # the worker is idle: only the finisher holds it
        s3.start()
        exit_code = worker.process.wait(timeout=120)

        job = store.get(job_id)
        assert exit_code == 0, services.logs()
        assert (job.status.value, job.attempts) == ("succeeded", 1), services.logs()


def test_sigterm_lets_the_running_job_finish_then_the_worker_exits(
    tmp_path: Path, tiny_model_dir: Path, short_inputs_url: str
) -> None:
    with ExitStack() as stack:
        faults = fault_stack(stack, tmp_path, tiny_model_dir, ["t0"])
        services, store, client = faults.services, faults.store, faults.client
        job_id = submit(client, short_inputs_url, SLOW, seed=7)
        wait_for(lambda: denoising(store, job_id), timeout_s=60, message="the job to be denoising", interval_s=0.05)

        exit_code = services.workers["t0"].stop(signal.SIGTERM, timeout_s=120)

        job = store.get(job_id)
        assert exit_code == 0, services.logs()
        assert (job.status.value, job.attempts) == ("succeeded", 1), services.logs()


def test_sigterm_past_the_grace_hands_the_job_back_to_another_worker(
    tmp_path: Path, tiny_model_dir: Path, short_inputs_url: str
) -> None:
    with ExitStack() as stack:
        faults = fault_stack(stack, tmp_path, tiny_model_dir, ["g0", "g1"], shutdown_grace_s=0)
        services, store, client = faults.services, faults.store, faults.client
        job_id = submit(client, short_inputs_url, SLOW, seed=8)
        wait_for(lambda: denoising(store, job_id), timeout_s=60, message="the job to be denoising", interval_s=0.05)
        leaving = str(store.get(job_id).worker).split("@")[0]
        staying = "g1" if leaving == "g0" else "g0"

        exit_code = services.workers[leaving].stop(signal.SIGTERM, timeout_s=30)
        job = wait_for_terminal(client, [job_id], timeout_s=120, stack=services)[job_id]

        record = store.get(job_id)
        assert exit_code == 0, services.logs()
        assert "back in the queue" in services.workers[leaving].logs(100_000)
        assert job["status"] == "succeeded", f"{job}\n{services.logs()}"
        assert (record.attempts, record.worker) == (2, f"{staying}@stack")
