"""A real service stack for hostile-input, fault and load tests: gateway and worker subprocesses.

Each process runs under ``tests.support.guarded_main`` (the loopback-only network guard inside it).
Storage is local (under ``data_dir``) unless the environment names an S3 endpoint. Waiting is on
conditions with deadlines.
"""

import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import ServiceProcess, http_ok, service_env, wait_for
from tests.support.redis_server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
TERMINAL = ("succeeded", "failed", "canceled")


@contextmanager
def guarded_process(name: str, args: list[str], env: Mapping[str, str], log_dir: Path) -> Iterator[ServiceProcess]:
    """Run ``mimicmotion ARGS`` with the network guard until the block ends (SIGTERM, then SIGKILL)."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.guarded_main", *args], env=dict(env), stdout=log,
            stderr=subprocess.STDOUT, cwd=REPO_ROOT,
        )  # fmt: skip
    service = ServiceProcess(name, process, log_path)
    try:
        yield service
    finally:
        if service.is_running():
            service.stop()


def stack_env(*, redis_url: str, data_dir: Path, model_dir: Path, **settings: str | float) -> dict[str, str]:
    """MIMICMOTION_* for a CPU stack on the tiny model; ``settings`` are more fields (lease_s=2 ...)."""
    base = {
        "MIMICMOTION_REDIS_URL": redis_url, "MIMICMOTION_MODEL_DIR": str(model_dir),
        "MIMICMOTION_DATA_DIR": str(data_dir), "MIMICMOTION_DEVICE": "cpu", "MIMICMOTION_DTYPE": "float32",
        # One torch thread per worker: several workers share a few cores without oversubscribing them.
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    }  # fmt: skip
    return service_env({**base, **{f"MIMICMOTION_{name.upper()}": str(value) for name, value in settings.items()}})


@dataclass
class Stack:
    base_url: str
    env: dict[str, str]
    log_dir: Path
    exit_stack: ExitStack
    gateway: ServiceProcess
    workers: dict[str, ServiceProcess] = field(default_factory=dict)

    def logs(self) -> str:
        return "\n".join(process.logs() for process in [self.gateway, *self.workers.values()])

    def start_worker(self, name: str, *, model: str | None = None, model_dir: Path | None = None) -> ServiceProcess:
        """Start one more worker named ``name@stack``; returns once its heartbeat shows in /readyz."""
        process = self.spawn_worker(name, model=model, model_dir=model_dir)
        self.wait_for_worker(name)
        return process

    def spawn_worker(self, name: str, *, model: str | None = None, model_dir: Path | None = None) -> ServiceProcess:
        """Start a worker named ``name@stack`` without waiting for it (several load their models at once); with
        ``model``, ``mimicmotion worker --model MODEL`` on ``model_dir`` (default: the stack's model directory)."""
        args = ["worker", "--name", f"{name}@stack", *(["--model", model] if model else [])]
        env = {**self.env, **({"MIMICMOTION_MODEL_DIR": str(model_dir)} if model_dir else {})}
        process = self.exit_stack.enter_context(guarded_process(name, args, env, self.log_dir))
        self.workers[name] = process
        return process

    def wait_for_worker(self, name: str) -> None:
        node, process = f"{name}@stack", self.workers[name]
        wait_for(
            lambda: self._has_worker(node, process), timeout_s=90, message=f"worker {node} to be live", interval_s=0.1
        )

    def _has_worker(self, node: str, process: ServiceProcess) -> bool:
        assert process.is_running(), f"{process.name} exited early\n{self.logs()}"
        try:
            return node in httpx.get(f"{self.base_url}/readyz", trust_env=False, timeout=5).json().get("workers", {})
        except (httpx.HTTPError, ValueError):
            return False


def start_stack(exit_stack: ExitStack, env: dict[str, str], log_dir: Path, workers: list[str]) -> Stack:
    """Start the gateway and the named workers; returns when /readyz lists every worker."""
    port = free_port()
    gateway = exit_stack.enter_context(
        guarded_process("gateway", ["serve", "--host", "127.0.0.1", "--port", str(port)], env, log_dir)
    )
    stack = Stack(f"http://127.0.0.1:{port}", env, log_dir, exit_stack, gateway)
    for name in workers:  # all processes start at once; their imports and model loads overlap
        stack.spawn_worker(name)
    wait_for(lambda: _gateway_up(stack), timeout_s=60, message="the gateway to answer", interval_s=0.1)
    for name in workers:
        stack.wait_for_worker(name)
    return stack


def _gateway_up(stack: Stack) -> bool:
    assert stack.gateway.is_running(), f"the gateway exited early\n{stack.logs()}"
    return http_ok(f"{stack.base_url}/healthz")


def wait_for_terminal(
    client: httpx.Client, job_ids: list[str], *, timeout_s: float, stack: Stack | None = None
) -> dict[str, dict[str, Any]]:
    """Poll until every job is terminal; returns the jobs by id."""
    done: dict[str, dict[str, Any]] = {}

    def all_done() -> bool:
        for job_id in job_ids:
            if job_id in done:
                continue
            response = client.get(f"/jobs/{job_id}")
            if response.status_code == 200 and response.json()["status"] in TERMINAL:
                done[job_id] = response.json()
        return len(done) == len(job_ids)

    try:
        wait_for(all_done, timeout_s=timeout_s, message=f"{len(job_ids)} jobs to finish", interval_s=0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.logs() if stack else ''}") from None
    return done
