"""Test guard: sockets may reach loopback addresses only, and only numeric or "localhost" names resolve.

Installed by an autouse fixture in every test module that fetches URLs or talks to S3, so a broken
address guard can never send a test's traffic to the internet or a private network.
"""

import ipaddress
import socket
from typing import Any

import pytest

_LOOPBACK_NAMES = {"localhost", "localhost.", "ip6-localhost"}
# A server's "all interfaces" address, resolved with AI_PASSIVE to bind a listening socket (a worker's
# metrics server binds 0.0.0.0): binding sends nothing, and a connect to it is still refused.
_WILDCARD_BIND_HOSTS = {"0.0.0.0", "::"}


class ForbiddenTestTrafficError(AssertionError):
    """A test tried to leave the machine."""


def _check_address(address: Any) -> None:
    if isinstance(address, str | bytes):
        return  # AF_UNIX path
    host = address[0]
    try:
        ip = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        raise ForbiddenTestTrafficError(f"test connected to the name {host!r}; connect to 127.0.0.1") from None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if not ip.is_loopback:
        raise ForbiddenTestTrafficError(f"test tried to connect to {ip}, which is not loopback")


def forbid_non_loopback_traffic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Patch connect, connect_ex, create_connection and getaddrinfo for the current test."""
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_create_connection = socket.create_connection
    original_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        _check_address(address)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check_address(address)
        return original_connect_ex(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        if address[0] not in _LOOPBACK_NAMES:
            _check_address(address)
        return original_create_connection(address, *args, **kwargs)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        flags = kwargs.get("flags", args[4] if len(args) > 4 else 0)
        is_name = host is not None and str(host) not in _LOOPBACK_NAMES
        is_wildcard_bind = flags & socket.AI_PASSIVE and str(host) in _WILDCARD_BIND_HOSTS
        if is_name and not flags & socket.AI_NUMERICHOST and not is_wildcard_bind:
            _check_address((host if isinstance(host, str) else host.decode(), 0))
        return original_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
