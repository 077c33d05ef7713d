"""A worker keeps consuming after Redis restarts, or exits so that a fresh one does (worker.heartbeat.ConsumerWatchdog).

Real processes: redis-server, the gateway and workers as subprocesses under the loopback-only guard.
Redis is either restarted in place (its sockets close) or replaced behind a stable address by
``tests.support.tcp_proxy`` (the old connections stay half-open, as when Redis moves to another node).
Leases are short (lease_s=2), so a stalled consumer is given up after 2 * lease_s = 4 s.
"""

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.jobs.store import JobStore
from tests.support.fault_stack import FAST_REAPER, QUICK, SLOW, denoising, job_body
from tests.support.processes import wait_for
from tests.support.redis_server import free_port, redis_server
from tests.support.service_stack import Stack, stack_env, start_stack, wait_for_terminal
from tests.support.tcp_proxy import half_opening_proxy
from worker.heartbeat import CONSUMER_STALLED_EXIT_CODE

pytestmark = pytest.mark.e2e


def submit_once_accepted(client: httpx.Client, body: dict[str, Any], *, hung: list[str] | None = None) -> str:
    """POST the job until the gateway accepts it; 503s (Redis away) are retried, and so are POSTs that got no
    answer within 20 s, which are listed in ``hung`` (a gateway blocked on a dead broker connection)."""

    def accepted() -> str | None:
        try:
            response = client.post("/jobs", json=body, timeout=20)
        except httpx.ReadTimeout:
            if hung is None:
                raise
            hung.append("POST /jobs")
            return None
        assert response.status_code in (202, 503), response.text
        return str(response.json()["id"]) if response.status_code == 202 else None

    job_id = wait_for(accepted, timeout_s=90, message="the gateway to accept a job", interval_s=0.2)
    assert job_id is not None
    return job_id


def kill_on_failure(services: Stack) -> Callable[..., bool]:
    """An ExitStack exit callback: if the test failed, SIGKILL what still runs before the stack stops it.

    Without the fix a stalled worker ignores SIGTERM and a gateway blocked in a publish never stops, and
    the teardown's "did not stop" error would hide the test's own failure.
    """

    def on_exit(exc_type: type[BaseException] | None, *_: object) -> bool:
        if exc_type is not None:
            for process in [services.gateway, *services.workers.values()]:
                if process.is_running():
                    process.process.kill()
                    process.process.wait(timeout=10)
        return False

    return on_exit


def port_of(redis_url: str) -> int:
    return int(redis_url.rsplit(":", 1)[1].split("/")[0])


def ready_workers(client: httpx.Client) -> list[str]:
    return list(client.get("/readyz").json().get("workers", []))


@pytest.mark.parametrize("appendonly", [True, False], ids=["aof", "no-persistence"])
def test_worker_stalled_by_a_replaced_redis_exits_and_its_successor_runs_the_jobs(
    tmp_path: Path, tiny_model_dir: Path, short_inputs_url: str, appendonly: bool
) -> None:
    with ExitStack() as stack:
        old_redis = ExitStack()
        old_url = old_redis.enter_context(redis_server(tmp_path, appendonly=appendonly))
        proxy = stack.enter_context(half_opening_proxy(port_of(old_url)))
        env = stack_env(redis_url=proxy.url, data_dir=tmp_path / "data", model_dir=tiny_model_dir, **FAST_REAPER)
        services = start_stack(stack, env, tmp_path, workers=["h0"])
        stack.push(kill_on_failure(services))
        client = stack.enter_context(httpx.Client(base_url=services.base_url, trust_env=False, timeout=30))
        running = submit_once_accepted(client, job_body(short_inputs_url, SLOW, seed=11))
        old_store = JobStore.from_url(old_url)
        wait_for(lambda: denoising(old_store, running), timeout_s=60, message="the job to be denoising",
                 interval_s=0.05)  # fmt: skip

        # Redis moves: every connection to the old one is left half-open (no FIN, no RST), the old
        # server stops (SIGTERM flushes its AOF), and a new one on the same directory takes the address.
        proxy.replace_upstream(None)
        old_redis.close()
        new_url = stack.enter_context(redis_server(tmp_path, appendonly=appendonly))
        proxy.replace_upstream(port_of(new_url))
        hung: list[str] = []
        submitted = submit_once_accepted(client, job_body(short_inputs_url, QUICK, seed=12), hung=hung)

        # The worker's ack of the running job was lost on a half-open connection, and its consumer takes
        # nothing more while its heartbeat goes on. It must exit non-zero rather than pretend to be
        # ready; the test then does what compose or Kubernetes would, and starts a fresh worker.
        stalled = services.workers["h0"]
        wait_for(lambda: not stalled.is_running(), timeout_s=60, message="the stalled worker h0 to exit",
                 interval_s=0.2)  # fmt: skip
        assert stalled.process.returncode == CONSUMER_STALLED_EXIT_CODE, stalled.logs()
        assert "h0@stack" not in ready_workers(client)  # its heartbeat was withdrawn on the way out
        services.start_worker("h1")
        survivors = [running, submitted] if appendonly else [submitted]
        jobs = wait_for_terminal(client, survivors, timeout_s=120, stack=services)

        assert [jobs[job_id]["status"] for job_id in survivors] == ["succeeded"] * len(survivors), services.logs()
        if not appendonly:  # the job store went with the old Redis: the running job is not known any more
            assert client.get(f"/jobs/{running}").status_code == 404
        assert hung == [], "the gateway blocked on a half-open broker connection instead of answering"


def test_worker_keeps_consuming_after_redis_restarts_empty(
    tmp_path: Path, tiny_model_dir: Path, short_inputs_url: str
) -> None:
    port = free_port()
    with ExitStack() as stack:
        first_redis = ExitStack()
        redis_url = first_redis.enter_context(redis_server(tmp_path, port=port))  # no persistence, as in dev
        env = stack_env(redis_url=redis_url, data_dir=tmp_path / "data", model_dir=tiny_model_dir, **FAST_REAPER)
        services = start_stack(stack, env, tmp_path, workers=["e0"])
        stack.push(kill_on_failure(services))
        worker = services.workers["e0"]
        client = stack.enter_context(httpx.Client(base_url=services.base_url, trust_env=False, timeout=30))
        running = submit_once_accepted(client, job_body(short_inputs_url, SLOW, seed=13))
        store = JobStore.from_url(redis_url)
        wait_for(lambda: denoising(store, running), timeout_s=60, message="the job to be denoising",
                 interval_s=0.05)  # fmt: skip

        first_redis.close()  # its sockets close, so the worker sees the outage at once
        wait_for(lambda: "Couldn't ack" in worker.logs(100_000), timeout_s=30,
                 message="the worker's ack to fail", interval_s=0.1)  # fmt: skip
        stack.enter_context(redis_server(tmp_path, port=port))  # same address, empty
        submitted = submit_once_accepted(client, job_body(short_inputs_url, QUICK, seed=14))
        job = wait_for_terminal(client, [submitted], timeout_s=60, stack=services)[submitted]

        assert job["status"] == "succeeded", services.logs()
        assert worker.is_running(), worker.logs()  # Celery reconnected by itself: the same process ran it
        wait_for(lambda: "e0@stack" in ready_workers(client), timeout_s=30,
                 message="the next heartbeat to announce e0 in the empty Redis", interval_s=0.2)  # fmt: skip
        assert client.get(f"/jobs/{running}").status_code == 404  # nothing of the old Redis survives
