"""Container health of a worker: does a live heartbeat in Redis come from this host?

``python -m worker.health`` exits 0 when one does, 1 otherwise; the worker image's HEALTHCHECK and
the Kubernetes readiness probe run it. A heartbeat is named ``<prefix>@<hostname>`` (see
``worker.main.default_name``), and a container or pod has its own hostname, so this proves that a
worker in *this* container loaded its models and still writes its heartbeat. No torch import.
"""

import socket
import sys

import redis

from core.jobs.heartbeats import WorkerHeartbeats
from core.jobs.keys import KeyedRedis
from core.settings import get_settings


def local_live_workers(heartbeats: WorkerHeartbeats, hostname: str) -> list[str]:
    """Names of the live workers whose heartbeat says they run on ``hostname``."""
    return sorted(name for name in heartbeats.live() if name.rpartition("@")[2] == hostname)


def main() -> int:
    heartbeats = WorkerHeartbeats(KeyedRedis.from_settings(get_settings(), socket_timeout_s=3.0))
    hostname = socket.gethostname()
    try:
        workers = local_live_workers(heartbeats, hostname)
    except redis.RedisError as exc:
        print(f"unhealthy: redis unavailable: {exc}", file=sys.stderr)
        return 1
    if not workers:
        print(f"unhealthy: no live worker heartbeat from {hostname}", file=sys.stderr)
        return 1
    print(f"healthy: {', '.join(workers)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
