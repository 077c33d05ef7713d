"""A worker SIGKILLed past half of a 40-step job: the other worker resumes from its last checkpoint. A worker
SIGKILLed while uploading: the other one uploads the result it kept, running no other stage.

Real processes (redis-server, the gateway, two workers on the tiny model, CPU float32), local storage or moto's
S3 server (behind tests/support/faulty_proxy.py, which holds the upload the test kills a worker in); the
cheaper checks (fingerprints, damaged checkpoints, storage faults, clean-up, SIGTERM) run in-process in
tests/integration/test_checkpoints.py.
"""

import uuid
from contextlib import ExitStack
from pathlib import Path

import boto3
import pytest
import torch

from core.execution.checkpoints import checkpoint_prefix, denoise_checkpoint_key
from core.execution.result_checkpoint import result_checkpoint_key
from tests.support.fault_stack import QUICK, fault_stack, kill, submit, worker_of
from tests.support.faulty_proxy import Fault, faulty_proxy
from tests.support.processes import wait_for
from tests.support.s3 import running_moto_server
from tests.support.service_stack import wait_for_terminal

pytestmark = pytest.mark.e2e

# 18 frames in tiles of 2: about 17 UNet calls a step, so a step takes long enough to be caught mid-job.
FORTY_STEPS = {**QUICK, "num_inference_steps": 40}
SEED = 11


def test_worker_killed_past_half_the_steps_resumes_on_the_other_worker_with_the_same_output(
    tmp_path: Path, tiny_model_dir: Path, inputs_url: str
) -> None:
    with ExitStack() as stack:
        faults = fault_stack(stack, tmp_path, tiny_model_dir, ["w0", "w1"], checkpoint_interval_s=0.2)
        services, store, client = faults.services, faults.store, faults.client
        job_id = submit(client, inputs_url, FORTY_STEPS, seed=SEED)
        checkpoint = tmp_path / "data" / "results" / denoise_checkpoint_key(job_id)

        def past_half_with_a_checkpoint() -> bool:
            job = store.get(job_id)
            past_half = job.progress is not None and job.progress.stage.value == "denoising" and job.progress.step >= 20
            return past_half and checkpoint.is_file() and torch.load(checkpoint, weights_only=True)["step"] >= 20

        wait_for(past_half_with_a_checkpoint, timeout_s=120, message="a checkpoint past step 20", interval_s=0.02)
        saved_step = torch.load(checkpoint, weights_only=True)["step"]  # the victim may store a later one yet
        victim = worker_of(store, job_id)
        survivor = "w1" if victim == "w0" else "w0"
        kill(services.workers[victim])
        job = wait_for_terminal(client, [job_id], timeout_s=120, stack=services)[job_id]

        assert job["status"] == "succeeded", f"{job}\n{services.logs()}"
        assert job["attempts"] == 2 and saved_step <= job["resumed_from_step"] < 40, job
        survivor_log = services.workers[survivor].logs(100_000)
        assert f"resuming from the checkpoint at step {job['resumed_from_step']} of 40" in survivor_log
        assert survivor_log.count(f"job {job_id}: succeeded") == 1
        assert not checkpoint.parent.exists()  # gone once the job ended

        # An uninterrupted run of the same job on the survivor: the very same video, byte for byte.
        reference_id = submit(client, inputs_url, FORTY_STEPS, seed=SEED)
        reference = wait_for_terminal(client, [reference_id], timeout_s=120, stack=services)[reference_id]
        assert reference["status"] == "succeeded" and reference["resumed_from_step"] is None, reference
        assert job["output"]["sha256"] == reference["output"]["sha256"]


FOUR_STEPS = {**QUICK, "num_inference_steps": 4}


def test_worker_killed_while_uploading_has_the_other_worker_upload_the_kept_result_without_denoising(
    tmp_path: Path, tiny_model_dir: Path, short_inputs_url: str
) -> None:
    """SIGKILL inside the result's upload, after the task's ack (the background finisher): the next attempt
    fetches the inputs for the fingerprint and uploads the files the first one encoded, nothing else."""
    with ExitStack() as stack:
        endpoint = stack.enter_context(running_moto_server())
        bucket = f"kept-{uuid.uuid4().hex[:12]}"  # moto keeps buckets per process: a fresh name per test
        admin = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                             aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        admin.create_bucket(Bucket=bucket)
        proxy, proxy_url = stack.enter_context(faulty_proxy(endpoint))
        # The first attempt's upload of its video never reaches S3: its worker stays inside upload_results.
        proxy.add(Fault("PUT", f"/{bucket}/jobs/", "hold", path_suffix="/attempt-1/output.mp4"))
        faults = fault_stack(stack, tmp_path, tiny_model_dir, ["u0", "u1"], s3_endpoint_url=proxy_url,
                             s3_bucket=bucket)  # fmt: skip
        services, store, client = faults.services, faults.store, faults.client

        def keys() -> list[str]:
            return [item["Key"] for item in admin.list_objects_v2(Bucket=bucket, Prefix="jobs/").get("Contents", [])]

        job_id = submit(client, short_inputs_url, FOUR_STEPS, seed=SEED)
        upload = f"/{bucket}/jobs/{job_id}/attempt-1/output.mp4"
        wait_for(lambda: proxy.seen("PUT", upload), timeout_s=120, message="the result's upload", interval_s=0.02)
        assert result_checkpoint_key(job_id) in keys()  # stored before the upload began
        victim = worker_of(store, job_id)
        survivor = "u1" if victim == "u0" else "u0"
        kill(services.workers[victim])
        job = wait_for_terminal(client, [job_id], timeout_s=120, stack=services)[job_id]

        assert job["status"] == "succeeded", f"{job}\n{services.logs()}"
        assert (job["attempts"], job["resumed_from_step"]) == (2, 4), job
        # No pose, conditioning, denoising, decoding or encoding on this attempt: only its fetch and its upload.
        assert set(job["timings"]) == {"fetching", "uploading"}, job["timings"]
        survivor_log = services.workers[survivor].logs(100_000)
        assert f"job {job_id}: uploading the result an earlier attempt encoded" in survivor_log
        assert survivor_log.count(f"job {job_id}: succeeded") == 1
        stored = keys()
        assert {f"jobs/{job_id}/attempt-2/output.mp4", f"jobs/{job_id}/attempt-2/pose.mp4"} <= set(stored), stored
        assert not [key for key in stored if key.startswith(checkpoint_prefix(job_id))]  # gone once the job ended
        assert len(proxy.seen("PUT", upload)) == 1  # the killed attempt's upload never got through

        # An uninterrupted run of the same job: the very same bytes (encoding is deterministic, across processes).
        reference_id = submit(client, short_inputs_url, FOUR_STEPS, seed=SEED)
        reference = wait_for_terminal(client, [reference_id], timeout_s=120, stack=services)[reference_id]
        assert reference["status"] == "succeeded" and reference["resumed_from_step"] is None, reference
        assert "encoding" in reference["timings"]
        assert job["output"]["sha256"] == reference["output"]["sha256"]
