"""Redis failover under load: a Sentinel-managed Redis (one master, one replica, three sentinels) behind a
real gateway and worker. The master is killed while jobs are queued and running; the sentinels promote the
replica, the gateway answers again, the worker consumes again, and every job ends exactly once with no
record lost. The measured outage is printed (RELIABILITY.md quotes it).
"""

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from core.jobs.store import JobStore
from core.settings import Settings
from tests.support.fault_stack import QUICK, job_body
from tests.support.input_files import input_server, write_inputs
from tests.support.processes import wait_for
from tests.support.sentinel import SentinelSet, sentinel_set
from tests.support.service_stack import Stack, stack_env, start_stack, wait_for_terminal

pytestmark = pytest.mark.e2e

STEPS = {**QUICK, "num_inference_steps": 30}  # long enough to be mid-denoising when the master dies
NUM_JOBS = 4


@pytest.fixture
def failover_stack(tmp_path: Path, tiny_model_dir: Path) -> Iterator[tuple[SentinelSet, Stack, str]]:
    with ExitStack() as stack:
        sentinels = stack.enter_context(sentinel_set(tmp_path))
        (tmp_path / "inputs").mkdir()
        inputs = stack.enter_context(input_server(write_inputs(tmp_path / "inputs", num_frames=4)))
        env = stack_env(
            redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path / "data", model_dir=tiny_model_dir,
            redis_sentinels=sentinels.setting, lease_s=20, reaper_interval_s=1,
            fetch_allowed_networks="127.0.0.0/8",
        )  # fmt: skip
        services = start_stack(stack, env, tmp_path, workers=["f0"])
        yield sentinels, services, inputs.url


def test_jobs_survive_a_master_failover_exactly_once(failover_stack: tuple[SentinelSet, Stack, str]) -> None:
    sentinels, services, inputs_url = failover_stack
    settings = Settings(redis_url="redis://127.0.0.1:1/0", redis_sentinels=sentinels.setting)
    store = JobStore.from_settings(settings)
    with httpx.Client(base_url=services.base_url, trust_env=False, timeout=10) as client:
        job_ids = []
        for seed in range(NUM_JOBS):
            response = client.post("/jobs", json=job_body(inputs_url, STEPS, seed))
            assert response.status_code == 202, response.text
            job_ids.append(response.json()["id"])
        wait_for(lambda: store.get(job_ids[0]).status.value == "running", timeout_s=120,
                 message="the first job to run", interval_s=0.1)  # fmt: skip
        old_master = sentinels.master_port()
        wait_for(lambda: sentinels.replica_caught_up(old_master), timeout_s=10, message="the replica to catch up")

        killed_at = time.monotonic()
        sentinels.kill_master()

        def gateway_answers() -> bool:
            try:
                return client.get(f"/jobs/{job_ids[-1]}", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(gateway_answers, timeout_s=60, message="the gateway to answer after the failover", interval_s=0.1)
        outage_s = time.monotonic() - killed_at
        assert sentinels.master_port() != old_master  # the replica was promoted
        jobs = wait_for_terminal(client, job_ids, timeout_s=300, stack=services)

    print(f"\nfailover: the gateway answered again {outage_s:.1f} s after the master was killed")
    assert [jobs[job_id]["status"] for job_id in job_ids] == ["succeeded"] * NUM_JOBS, services.logs()
    records = [store.get(job_id) for job_id in job_ids]  # every record still there
    assert all(record.output is not None for record in records)
    assert len({record.output.sha256 for record in records if record.output}) == NUM_JOBS  # one result each
