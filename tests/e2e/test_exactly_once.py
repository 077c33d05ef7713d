"""Exactly once on a real stack: a frozen worker that lost its lease, and task messages delivered twice.

One stack serves the module: redis-server, the gateway and two workers as subprocesses under the
loopback-only guard, with short leases (lease_s=2), storing results in moto's S3 server. The bucket
keeps versions, so every upload of a key is counted: a stale worker overwriting a result with the
same bytes would still leave a second version behind.
"""

import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from core.contract.records import Job
from core.settings import Settings
from service.queue import create_task_sender
from tests.support.fault_stack import QUICK, FaultStack, denoising, fault_stack, kill, submit, worker_of
from tests.support.input_files import InputServer
from tests.support.processes import ServiceProcess, frozen, wait_for
from tests.support.s3 import moto_bucket
from tests.support.service_stack import wait_for_terminal

pytestmark = pytest.mark.e2e

BUCKET = "exactly-once"
WORKERS = ("w0", "w1")
# Enough steps that a worker caught at step 2 still has most of them to go when it resumes.
STEPS_20 = {**QUICK, "num_inference_steps": 20}
NOTHING_TO_DO = "unknown, finished or held by a live worker; nothing to do"
TASK_RETURNED = re.compile(r"Task mimicmotion\.animate\[[0-9a-f-]+\] succeeded in ")


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """A boto3 client of a moto S3 server whose bucket keeps every version of every key."""
    with moto_bucket(BUCKET, versioned=True) as client:
        yield client


@pytest.fixture(scope="module")
def module_stack(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, s3: Any) -> Iterator[FaultStack]:
    with ExitStack() as stack:
        yield fault_stack(stack, tmp_path_factory.mktemp("exactly-once"), tiny_model_dir, list(WORKERS),
                          s3_endpoint_url=s3.meta.endpoint_url, s3_bucket=BUCKET)  # fmt: skip


@pytest.fixture
def once(module_stack: FaultStack) -> FaultStack:
    """The module's stack with both workers running (one killed by an earlier test is replaced)."""
    services = module_stack.services
    for name in WORKERS:
        if not services.workers[name].is_running():
            services.workers.pop(name)
            services.start_worker(name)
    return module_stack


def stored_versions(s3: Any, job_id: str) -> dict[str, list[str]]:
    """Every result key ever stored under the job's prefix, with the sha256 of each of its versions, oldest first.

    Live previews (``preview-NNNN.webp``) are left out: each is deleted when the next replaces it and the last
    when the job ends, but a versioned bucket keeps their versions.
    """
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix=f"jobs/{job_id}/").get("Versions", [])
    versions = [version for version in versions if "/preview-" not in version["Key"]]
    stored: dict[str, list[str]] = {}
    for version in sorted(versions, key=lambda v: v["LastModified"]):
        head = s3.head_object(Bucket=BUCKET, Key=version["Key"], VersionId=version["VersionId"])
        stored.setdefault(version["Key"], []).append(head["Metadata"]["sha256"])
    return stored


def assert_only_the_records_files(s3: Any, record: Job) -> None:
    """One upload of each result file, the one the record names, and nothing else stored under the job's prefix.

    A stale attempt may have stored its pose video before it froze (pose videos are stored as soon as the
    poses exist); it must have deleted it again, so only the record's files are current objects.
    """
    assert record.output is not None
    current = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"jobs/{record.id}/").get("Contents", [])
    assert sorted(item["Key"] for item in current) == sorted([record.output.video_key, record.output.pose_video_key])
    stored = stored_versions(s3, record.id)
    assert stored[record.output.video_key] == [record.output.sha256]
    assert len(stored[record.output.pose_video_key]) == 1


def other(name: str) -> str:
    return WORKERS[1 - WORKERS.index(name)]


def taken_over(once: FaultStack, job_id: str, survivor: str) -> bool:
    """The survivor claimed the job again (the reaper handed it back once the frozen worker's lease lapsed).

    The frozen worker is resumed right then, so it is steps ahead of the survivor: were it to go on, it
    would reach its upload and its final write while the job still runs on the survivor.
    """
    job = once.store.get(job_id)
    return job.status.value == "running" and (job.attempts, job.worker) == (2, f"{survivor}@stack")


def log_of(process: ServiceProcess) -> str:
    return process.logs(1_000_000)


def tasks_returned(process: ServiceProcess) -> int:
    """Animate tasks this worker has returned from (Celery acknowledges each message then)."""
    return len(TASK_RETURNED.findall(log_of(process)))


def test_frozen_worker_that_lost_its_lease_neither_uploads_nor_finishes_the_job(
    once: FaultStack, s3: Any, short_inputs_url: str
) -> None:
    services, store = once.services, once.store
    job_id = submit(once.client, short_inputs_url, STEPS_20, seed=21)
    wait_for(lambda: denoising(store, job_id), timeout_s=60, message="the job to be denoising")
    victim = worker_of(store, job_id)
    survivor, stale = other(victim), services.workers[victim]

    with frozen(stale):  # its lease lapses; the survivor's reaper hands the job back and the survivor takes it
        wait_for(lambda: taken_over(once, job_id, survivor), timeout_s=30, message="the other worker to take over")
    # Resumed while the survivor runs the job: at its next step it must see the job is no longer its own.
    wait_for(lambda: f"job {job_id}: stopped, no longer ours" in log_of(stale), timeout_s=60,
             message="the resumed worker to give the job up")  # fmt: skip
    job = wait_for_terminal(once.client, [job_id], timeout_s=60, stack=services)[job_id]

    record = store.get(job_id)
    assert job["status"] == "succeeded", f"{job}\n{services.logs()}"
    assert record.output is not None and (record.attempts, record.worker) == (2, f"{survivor}@stack")
    assert f"job {job_id}: succeeded" not in log_of(stale) and f"job {job_id}: failed" not in log_of(stale)
    assert log_of(services.workers[survivor]).count(f"job {job_id}: succeeded") == 1
    # One upload of each file, the survivor's, and it is the one the record describes.
    assert_only_the_records_files(s3, record)
    assert stale.is_running()  # the stale worker lives on to take the next job


def test_frozen_worker_whose_download_fails_after_the_takeover_does_not_fail_the_job(
    once: FaultStack, input_servers: Callable[[int], InputServer]
) -> None:
    services, store = once.services, once.store
    inputs = input_servers(3)
    with inputs.holding("drive.mp4") as download:  # the first worker's video download waits
        job_id = submit(once.client, inputs.url, STEPS_20, seed=22)
        assert download.arrived.wait(60), services.logs()
        victim = worker_of(store, job_id)
        survivor, stale = other(victim), services.workers[victim]
        with frozen(stale):
            wait_for(lambda: taken_over(once, job_id, survivor), timeout_s=30, message="the other worker to take over")
            download.release(503)  # the stale worker reads this answer once resumed: its job "fails"
        wait_for(lambda: f"job {job_id}: failed [input_unreachable]" in log_of(stale), timeout_s=30,
                 message="the resumed worker's download to fail")  # fmt: skip
    job = wait_for_terminal(once.client, [job_id], timeout_s=60, stack=services)[job_id]

    record = store.get(job_id)
    assert job["status"] == "succeeded", f"{job}\n{services.logs()}"  # not failed by the worker that lost it
    assert (record.attempts, record.worker, record.error) == (2, f"{survivor}@stack", None)
    assert log_of(services.workers[survivor]).count(f"job {job_id}: succeeded") == 1


def test_each_job_runs_once_when_its_task_message_is_delivered_twice(
    once: FaultStack, s3: Any, short_inputs_url: str
) -> None:
    services, store = once.services, once.store
    # A second publisher, standing in for a broker that redelivers, or a reaper that resends a job
    # whose message was in flight: each message at once followed by its twin, so both workers get one.
    sender = create_task_sender(Settings(redis_url=services.env["MIMICMOTION_REDIS_URL"]))
    job_ids = []
    for seed in range(3):
        job_ids.append(submit(once.client, short_inputs_url, {**QUICK, "num_inference_steps": 6}, seed=30 + seed))
        sender.send_animate(job_ids[-1])
    jobs = wait_for_terminal(once.client, job_ids, timeout_s=90, stack=services)

    logs = "".join(log_of(process) for process in services.workers.values())
    for job_id in job_ids:
        record = store.get(job_id)
        assert (jobs[job_id]["status"], record.attempts) == ("succeeded", 1), f"{record}\n{services.logs()}"
        assert logs.count(f"job {job_id}: succeeded") == 1 and logs.count(f"job {job_id}: started on") == 1
        assert_only_the_records_files(s3, record)
    assert store.running_ids() == [] and store.queue_length() == 0


def test_message_redelivered_after_its_worker_died_does_not_run_the_finished_job_again(
    once: FaultStack, s3: Any, short_inputs_url: str
) -> None:
    services, store = once.services, once.store
    returned_before = {name: tasks_returned(process) for name, process in services.workers.items()}
    job_id = submit(once.client, short_inputs_url, QUICK, seed=40)
    assert wait_for_terminal(once.client, [job_id], timeout_s=60, stack=services)[job_id]["status"] == "succeeded"
    finished = store.get(job_id)
    ran, survivor = services.workers[worker_of(store, job_id)], services.workers[other(worker_of(store, job_id))]
    # Celery acknowledges the message when the task returns; then the worker dies.
    wait_for(lambda: tasks_returned(ran) > returned_before[ran.name], timeout_s=30, message="the task to return")
    kill(ran)
    handled = tasks_returned(survivor)

    create_task_sender(Settings(redis_url=services.env["MIMICMOTION_REDIS_URL"])).send_animate(job_id)
    wait_for(lambda: tasks_returned(survivor) > handled, timeout_s=60,
             message="the survivor to take the redelivered message")  # fmt: skip

    assert store.get(job_id) == finished, log_of(survivor)  # not run again, not touched
    assert f"job {job_id}: {NOTHING_TO_DO}" in log_of(survivor)
    assert_only_the_records_files(s3, finished)
