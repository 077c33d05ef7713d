"""Jobs the gateway accepts and the worker must end with their exact status, code and message."""

import pytest

from tests.e2e.bad_inputs.job_cases import JOB_CASES, JobCase
from tests.e2e.bad_inputs.world import World
from tests.support.service_stack import wait_for_terminal

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("case", JOB_CASES, ids=[case.id for case in JOB_CASES])
def test_job_ends_with_its_exact_outcome(world: World, case: JobCase) -> None:
    job = wait_for_terminal(world.client, [world.job_ids[case.id]], timeout_s=90, stack=world.stack)[
        world.job_ids[case.id]
    ]

    error = job.get("error") or {}
    assert (job["status"], error.get("code")) == (case.status, case.code), f"{job}\n{world.stack.logs()}"
    if case.code is not None:
        assert case.fragment in error["message"], error["message"]
        assert job["output"] is None
    else:
        assert job["output"]["num_frames"] == 3
    # Nothing reached the wrong address, and the worker survived (the same process, still consuming).
    assert [hit for canary in world.canaries for hit in canary.hits_for(case.id)] == []
    assert world.stack.workers["w0"].is_running() and world.stack.workers["w0"].process.pid == world.worker_pid
