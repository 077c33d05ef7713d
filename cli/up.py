"""``mimicmotion up``: the whole stack on one machine (Redis, gateway, one worker, the webhook worker),
for trying it out.

Uses the configured Redis if it answers, else starts a local redis-server under data_dir; local
storage unless S3 is configured; the configured model, else a tiny random one, said loudly.
Children get their settings through MIMICMOTION_* variables and are stopped on Ctrl-C or SIGTERM.
"""

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import httpx
import redis

from core import webhooks
from core.errors import ConfigurationError, ModelFilesError
from core.settings import Settings

logger = logging.getLogger(__name__)

LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128"
READY_TIMEOUT_S = 600.0  # loading real weights onto a GPU can take minutes
STOP_TIMEOUT_S = 30.0


def up_command(settings: Settings, *, host: str | None, port: int | None) -> int:
    host, port = host or settings.host, port or settings.port
    data_dir = settings.data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    with ExitStack() as stack, _stop_on_signals(stop):
        # 1. Redis: the configured one, or a local redis-server kept under data_dir.
        redis_url = stack.enter_context(_redis(settings.redis_url, data_dir))
        # 2. Storage and model; inputs on loopback may be fetched (the local stack serves local files).
        if settings.s3_endpoint_url:
            logger.info("results go to S3 bucket %s at %s", settings.s3_bucket, settings.s3_endpoint_url)
        else:
            logger.info("results are stored under %s and served by the gateway", data_dir)
        model_dir = settings.model_dir or _tiny_model(data_dir / "tiny-model")
        networks = ",".join(str(network) for network in settings.fetch_allowed_networks) or LOOPBACK_NETWORKS
        logger.info("input fetching may reach %s (MIMICMOTION_FETCH_ALLOWED_NETWORKS)", networks)
        # 3. Gateway and one worker, as child processes with the resolved settings.
        env = {
            **os.environ,
            "MIMICMOTION_REDIS_URL": redis_url, "MIMICMOTION_DATA_DIR": str(data_dir),
            "MIMICMOTION_MODEL_DIR": str(Path(model_dir).resolve()), "MIMICMOTION_FETCH_ALLOWED_NETWORKS": networks,
            "MIMICMOTION_HOST": host, "MIMICMOTION_PORT": str(port),
            "MIMICMOTION_WEBHOOK_SECRET": _webhook_secret(settings, data_dir),
        }  # fmt: skip
        gateway = stack.enter_context(_child("gateway", ["serve", "--host", host, "--port", str(port)], env))
        worker = stack.enter_context(_child("worker", ["worker", "--name", f"up@{socket.gethostname()}"], env))
        webhooks = stack.enter_context(
            _child("webhook worker", ["webhook-worker", "--name", f"up-webhooks@{socket.gethostname()}"], env)
        )
        children = {"gateway": gateway, "worker": worker, "webhook worker": webhooks}
        base_url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        if not _wait_ready(base_url, list(children.values()), stop):
            return 1
        print(
            f"MimicMotion is up at {base_url} (gateway pid {gateway.pid}, worker pid {worker.pid}); Ctrl-C stops it.\n"
            f"Open {base_url}/ in a browser (the playground), or try: mimicmotion submit --url {base_url} "
            "--image IMAGE --video VIDEO --out result.mp4 (local files or URLs)",
            flush=True,
        )
        # 4. Run until a signal, or until a child dies (then everything stops: a half stack helps nobody).
        while not stop.wait(0.5):
            for name, child in children.items():
                if child.poll() is not None:
                    logger.error("the %s exited with %d; stopping", name, child.returncode)
                    return 1
        logger.info("stopping")
    return 0


def _webhook_secret(settings: Settings, data_dir: Path) -> str:
    """The configured webhook secret, else one made once and kept (0600) under data_dir."""
    configured = settings.webhook_secret.get_secret_value()
    if configured:
        return configured
    path = data_dir / "webhook_secret"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(webhooks.new_secret())
    logger.info("webhooks are signed with the secret in %s (set MIMICMOTION_WEBHOOK_SECRET to choose one)", path)
    return path.read_text().strip()


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    def handle(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _redis(url: str, data_dir: Path) -> Iterator[str]:
    if _redis_answers(url):
        logger.info("using Redis at %s", url)
        yield url
        return
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigurationError(f"Redis at {url} does not answer; `up` starts a local Redis only for loopback URLs")
    binary = shutil.which("redis-server")
    if binary is None:
        raise ConfigurationError(
            f"no Redis answers at {url} and redis-server is not installed: install it "
            "(apt-get install redis-server, brew install redis) or set MIMICMOTION_REDIS_URL"
        )
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(exist_ok=True)
    port = str(parts.port or 6379)
    command = [binary, "--bind", "127.0.0.1", "--port", port, "--dir", str(redis_dir), "--appendonly", "yes",
               "--save", "", "--logfile", str(redis_dir / "redis.log")]  # fmt: skip
    with _child_process("redis", command) as process:
        deadline = time.monotonic() + 10.0
        while not _redis_answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise ConfigurationError(f"redis-server did not start on port {port}; see {redis_dir / 'redis.log'}")
            time.sleep(0.05)
        logger.info("started redis-server on 127.0.0.1:%s (pid %d, data in %s)", port, process.pid, redis_dir)
        yield url


def _redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _tiny_model(directory: Path) -> Path:
    from core.models.files import resolve_model_files
    from core.models.tiny import make_tiny_model

    try:
        is_ready = resolve_model_files(directory).is_tiny
    except ModelFilesError:
        is_ready = False
    if not is_ready:
        make_tiny_model(directory)
    banner = "!" * 78
    logger.warning(
        "\n%s\n!! NO MODEL CONFIGURED: running a TINY RANDOM model from %s\n"
        "!! Its outputs are noise. Set MIMICMOTION_MODEL_DIR to the MimicMotion weights for real results.\n%s",
        banner, directory, banner,
    )  # fmt: skip
    return directory


@contextmanager
def _child(name: str, args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with _child_process(name, [sys.executable, "-m", "cli.main", *args], env) as process:
        logger.info("started the %s (pid %d)", name, process.pid)
        yield process


@contextmanager
def _child_process(
    name: str, command: list[str], env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` until the block ends, then SIGTERM it (SIGKILL after STOP_TIMEOUT_S).

    Children get their own session so that a terminal's Ctrl-C reaches only `up`, which then stops
    them in reverse order of starting (worker, gateway, Redis).
    """
    process = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                logger.warning("the %s did not stop in %.0f s; killing it", name, STOP_TIMEOUT_S)
                process.kill()
                process.wait()
        logger.info("the %s stopped (pid %d)", name, process.pid)


def _wait_ready(base_url: str, children: list[subprocess.Popen[bytes]], stop: threading.Event) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_S
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one INFO line per readiness poll
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while not stop.is_set():
            if any(child.poll() is not None for child in children):
                logger.error("a child process exited before the stack was ready")
                return False
            try:
                if client.get(f"{base_url}/readyz").status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                logger.error("the stack was not ready after %.0f s (%s/readyz)", READY_TIMEOUT_S, base_url)
                return False
            time.sleep(0.5)
    return False
