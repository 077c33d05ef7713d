"""A stack for fault tests: its own redis-server, the gateway and workers with short leases, a store and a client.

Leases are short (lease_s=2, a reaper pass every 0.5 s), so a lost worker's job is handed back within
seconds; production keeps 60 s. The job params are the tiny model's quickest (QUICK) and one long enough
to be caught mid-denoising (SLOW).
"""

import signal
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from core.jobs.store import JobStore
from tests.support.processes import ServiceProcess
from tests.support.redis_server import redis_server
from tests.support.service_stack import Stack, stack_env, start_stack

AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
QUICK: dict[str, Any] = {"resolution": 128, "num_inference_steps": 1, "tile_size": 2, "tile_overlap": 1,
                         "sample_stride": 1, "fps": 8, "guidance_scale": 1.0}  # fmt: skip
SLOW = {**QUICK, "num_inference_steps": 60}  # many steps of the tiny model: long enough to be caught denoising
FAST_REAPER: dict[str, str | float] = {"lease_s": 2, "reaper_interval_s": 0.5, "fetch_allowed_networks": "127.0.0.0/8"}


def job_body(inputs_url: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
    return {"image_url": f"{inputs_url}/person.png", "video_url": f"{inputs_url}/drive.mp4",
            "params": {**params, "seed": seed}}  # fmt: skip


def submit(client: httpx.Client, inputs_url: str, params: dict[str, Any], seed: int) -> str:
    """POST one job on the inputs at ``inputs_url``; returns its id."""
    response = client.post("/jobs", json=job_body(inputs_url, params, seed))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def denoising(store: JobStore, job_id: str) -> bool:
    """The job is past its second denoising step (so it is mid-run, with steps to go)."""
    job = store.get(job_id)
    return job.progress is not None and job.progress.stage.value == "denoising" and job.progress.step >= 2


def kill(process: ServiceProcess) -> None:
    """SIGKILL a stack process (a crash, the OOM killer, a preempted machine) and wait until it is gone."""
    process.process.send_signal(signal.SIGKILL)
    process.process.wait(timeout=10)


def worker_of(store: JobStore, job_id: str) -> str:
    """The stack name (``w0``) of the worker the job's record names."""
    return str(store.get(job_id).worker).split("@")[0]


@dataclass
class FaultStack:
    services: Stack
    store: JobStore
    client: httpx.Client


def fault_stack(
    stack: ExitStack, tmp_path: Path, tiny_model_dir: Path, workers: list[str], **settings: str | float
) -> FaultStack:
    """Own redis-server, the gateway and ``workers`` (fast reaper plus ``settings``), a store and a client."""
    redis_url = stack.enter_context(redis_server(tmp_path))
    env = stack_env(redis_url=redis_url, data_dir=tmp_path / "data", model_dir=tiny_model_dir,
                    **{**FAST_REAPER, **settings})  # fmt: skip
    services = start_stack(stack, {**env, **AWS}, tmp_path, workers=workers)
    client = stack.enter_context(httpx.Client(base_url=services.base_url, trust_env=False, timeout=10))
    return FaultStack(services, JobStore.from_url(redis_url), client)
