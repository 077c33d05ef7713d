"""A Sentinel-managed Redis on loopback: one master, one replica, three sentinels, all `redis-server`
processes of the test's own (``redis-server --sentinel`` with a config file each)."""

import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support.processes import wait_for
from tests.support.redis_server import free_port

MASTER_NAME = "mymaster"
DOWN_AFTER_MS = 1000  # how long a master may not answer before the sentinels call it down
FAILOVER_TIMEOUT_MS = 5000


@dataclass
class SentinelSet:
    sentinels: list[tuple[str, int]]
    servers: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)  # port -> redis-server

    @property
    def setting(self) -> str:
        """MIMICMOTION_REDIS_SENTINELS."""
        return ",".join(f"{host}:{port}" for host, port in self.sentinels)

    def master_port(self) -> int:
        """The port the sentinels name as master now."""
        client = redis.Redis("127.0.0.1", self.sentinels[0][1], socket_timeout=2, decode_responses=True)
        try:
            return int(client.sentinel_get_master_addr_by_name(MASTER_NAME)[1])
        finally:
            client.close()

    def kill_master(self) -> int:
        """SIGKILL the master's process (a crashed machine); returns its port."""
        port = self.master_port()
        process = self.servers.pop(port)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        return port

    def replica_caught_up(self, master_port: int) -> bool:
        """Every write the master acknowledged has reached a replica (so a failover loses nothing)."""
        client = redis.Redis("127.0.0.1", master_port, socket_timeout=2, decode_responses=True)
        try:
            info = client.info("replication")
            offsets = [info[key]["offset"] for key in info if key.startswith("slave") and isinstance(info[key], dict)]
            return bool(offsets) and min(offsets) >= info["master_repl_offset"]
        finally:
            client.close()


def _start(args: list[str], port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    process = subprocess.Popen([binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis("127.0.0.1", port, socket_timeout=1)

    def answers() -> bool:
        assert process.poll() is None, f"redis-server on {port} exited"
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    wait_for(answers, timeout_s=10, message=f"redis-server on {port}", interval_s=0.02)
    client.close()
    return process


@contextmanager
def sentinel_set(directory: Path) -> Iterator[SentinelSet]:
    """Start master, replica and three sentinels; stop them all at the end."""
    master, replica = free_port(), free_port()
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no"]
    with ExitStack() as stack:
        servers: dict[int, subprocess.Popen[bytes]] = {}
        stack.callback(lambda: [p.kill() for p in servers.values() if p.poll() is None])
        servers[master] = _start(["--port", str(master), "--dir", str(directory), *common], master)
        servers[replica] = _start(
            ["--port", str(replica), "--dir", str(directory), "--replicaof", "127.0.0.1", str(master), *common],
            replica,
        )
        sentinels = []
        for index in range(3):
            port = free_port()
            config = directory / f"sentinel-{index}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {directory}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            )
            process = _start([str(config), "--sentinel"], port)
            stack.callback(lambda p=process: (p.kill(), p.wait(timeout=10)))
            sentinels.append(("127.0.0.1", port))
        sentinel_group = SentinelSet(sentinels, servers)

        def replica_known() -> bool:  # every sentinel has found the replica through the master
            for _, port in sentinels:
                client = redis.Redis("127.0.0.1", port, socket_timeout=1, decode_responses=True)
                try:
                    if not client.sentinel_slaves(MASTER_NAME):
                        return False
                finally:
                    client.close()
            return True

        wait_for(replica_known, timeout_s=30, message="the sentinels to see the replica", interval_s=0.1)
        yield sentinel_group
