"""A worker SIGKILLed past half of a 40-step job: the other worker resumes from its last checkpoint.

Real processes (redis-server, the gateway, two workers on the tiny model, CPU float32) and local storage; the
cheaper checks (fingerprints, damaged checkpoints, storage faults, clean-up, SIGTERM) run in-process in
tests/integration/test_checkpoints.py.
"""

import signal
from contextlib import ExitStack
from pathlib import Path

import pytest
import torch

from core.execution.checkpoints import denoise_checkpoint_key
from tests.support.fault_stack import QUICK, fault_stack, submit, worker_of
from tests.support.processes import wait_for
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
        services.workers[victim].process.send_signal(signal.SIGKILL)
        services.workers[victim].process.wait(timeout=10)
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
