"""Real service processes for end-to-end tests: start ``mimicmotion`` subcommands, wait on conditions.

Each process logs to a file; ``logs()`` returns the tail for assertion messages. Waiting is always
on a condition with a deadline, never on a fixed sleep.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")


def wait_for(condition: Callable[[], T], *, timeout_s: float, message: str, interval_s: float = 0.05) -> T:
    """Return the first truthy value of ``condition()``; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {message}")
        time.sleep(interval_s)  # polling a condition with a deadline, not synchronising on time


def service_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This environment without the developer's MIMICMOTION_* settings, plus ``extra``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MIMICMOTION_")}
    return {**env, "MIMICMOTION_LOG_LEVEL": "INFO", **extra}


class ServiceProcess:
    def __init__(self, name: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name, self.process, self.log_path = name, process, log_path

    def logs(self, num_chars: int = 4000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- {self.name} log (tail) ---\n{text[-num_chars:]}"

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if self.is_running():
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{self.name} did not stop within {timeout_s:g} s\n{self.logs()}") from None


@contextmanager
def mimicmotion(name: str, args: list[str], env: Mapping[str, str], log_dir: Path) -> Iterator[ServiceProcess]:
    """Run ``python -m cli.main ARGS`` until the block ends (SIGTERM, then SIGKILL)."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args], env=dict(env), stdout=log, stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
    service = ServiceProcess(name, process, log_path)
    try:
        yield service
    finally:
        if service.is_running():
            service.stop()


@contextmanager
def frozen(service: ServiceProcess) -> Iterator[None]:
    """Stop the process (SIGSTOP) for the block, as a long GC pause or a suspended VM would; SIGCONT after."""
    service.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        if service.is_running():
            service.process.send_signal(signal.SIGCONT)


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False
