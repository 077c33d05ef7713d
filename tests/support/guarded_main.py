"""``python -m tests.support.guarded_main ARGS``: ``mimicmotion ARGS`` with the test network guard inside.

Service processes started by hostile-input tests run under this launcher. The loopback-only guard of
``tests.support.network`` is installed in the process itself, so if the worker's address checks ever
broke, a fetch of 10.0.0.1 or 169.254.169.254 would raise here instead of leaving the machine. Test
host names (``*.example.test``) resolve from a fixed table; any other name does not resolve at all.
"""

import faulthandler
import ipaddress
import signal
import socket
import sys
from typing import Any

import pytest

from tests.support.network import forbid_non_loopback_traffic

# Names a job may use; 127.0.0.2 is the hostile-input server (allowed), 127.0.0.1 the canary (refused).
TEST_HOSTS: dict[str, list[str]] = {
    "inputs.example.test": ["127.0.0.2"],
    "loopback.example.test": ["127.0.0.1"],
    "private.example.test": ["10.20.30.40"],
    "metadata.example.test": ["169.254.169.254"],
    "linklocal6.example.test": ["fe80::1"],
    "mapped.example.test": ["::ffff:192.168.0.1"],
    "mixed.example.test": ["127.0.0.2", "192.168.1.10"],  # one allowed address does not excuse the other
}
# DNS rebinding: the first answer for a name is the allowed server, every later answer the canary.
REBINDING_SUFFIX = ".rebind.example.test"
_answered: set[str] = set()


def _answers(name: str) -> list[str] | None:
    if name in TEST_HOSTS:
        return TEST_HOSTS[name]
    if name.endswith(REBINDING_SUFFIX):
        first = name not in _answered
        _answered.add(name)
        return ["127.0.0.2"] if first else ["127.0.0.1"]
    return None


def _is_other_name(name: str) -> bool:
    """A host name (not an address literal) that is neither localhost nor a test host."""
    if name.lower().rstrip(".") in ("localhost", "ip6-localhost"):
        return False
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return not _is_numeric(name)
    return False


def _is_numeric(name: str) -> bool:
    # 0x7f000001, 2130706433, 127.1: libc reads these as addresses, and so must the guard below.
    try:
        socket.inet_aton(name)
    except OSError:
        return False
    return True


def install_guard() -> None:
    """Loopback-only sockets for this whole process, plus the test host table."""
    patch = pytest.MonkeyPatch()  # never undone: the process ends with it
    forbid_non_loopback_traffic(patch)
    guarded_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        flags = kwargs.get("flags", args[3] if len(args) > 3 else 0)
        if flags & socket.AI_NUMERICHOST or not isinstance(name, str):
            return guarded_getaddrinfo(host, port, *args, **kwargs)  # a numeric parse, no lookup
        answers = _answers(name.lower().rstrip("."))
        if answers is None:
            if _is_other_name(name):
                # No DNS query leaves a test: any other name simply does not resolve.
                raise socket.gaierror(socket.EAI_NONAME, f"{name}: no such test host (no DNS in tests)")
            return guarded_getaddrinfo(host, port, *args, **kwargs)
        port_number = int(port or 0)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port_number, 0, 0))
            if ":" in address
            else (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port_number))
            for address in answers
        ]

    patch.setattr(socket, "getaddrinfo", getaddrinfo)


if __name__ == "__main__":
    faulthandler.register(signal.SIGUSR2)  # `kill -USR2 PID` dumps every thread's stack into the log
    install_guard()
    from cli.main import main

    sys.exit(main(sys.argv[1:]))
