"""HTTP limits of the real gateway (``mimicmotion serve``, uvicorn) before a request reaches the app (issue 19).

The request head is capped in bytes (16 KiB: 400, connection closed) and in header lines (100: 431), and a
head must arrive within ``http_header_timeout_s`` (2 s in this stack). Raw sockets, since an HTTP client
would refuse to send most of this.
"""

import contextlib
import socket
import threading
import time
from collections.abc import Callable

import psutil
import pytest

from tests.e2e.bad_inputs.world import World

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT_S = 2.0  # LIMITS["http_header_timeout_s"]
MIB = 1024 * 1024


def _port(world: World) -> int:
    return int(world.stack.base_url.rsplit(":", 1)[1])


def _connect(world: World) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", _port(world)), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _head(*headers: bytes) -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def _exchange(world: World, data: bytes) -> bytes:
    """Send ``data`` (stopping if the gateway hangs up), then read until it closes; what came back."""
    with _connect(world) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        return _read_to_close(sock)


def _read_to_close(sock: socket.socket) -> bytes:
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass  # closed with our bytes unread: the kernel resets instead of a FIN
    return received


def test_a_head_under_the_byte_cap_is_served(world: World) -> None:
    response = _exchange(world, _head(b"X-Pad: " + b"a" * 12_000, b"Connection: close"))

    assert response.startswith(b"HTTP/1.1 200 "), response[:200]


def test_a_whole_head_over_the_byte_cap_is_answered_431(world: World) -> None:
    # 20 KiB arrives in one read, so h11 parses it whole; the app's check of the headers' size answers.
    response = _exchange(world, _head(b"X-Pad: " + b"a" * 20_000, b"Connection: close"))

    assert response.startswith(b"HTTP/1.1 431 "), response[:200]
    assert b"headers are 20" in response and b"the limit is 16384" in response


def test_an_unfinished_head_over_the_byte_cap_is_answered_400_and_closed(world: World) -> None:
    # 20 KiB of a head that has not ended: h11's buffer cap refuses it without waiting for the rest.
    with _connect(world) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Pad: " + b"a" * 20_000)
        response = _read_to_close(sock)

    assert response.startswith(b"HTTP/1.1 400 "), response[:200]


def test_a_one_mib_header_and_ten_thousand_headers_are_not_served(world: World) -> None:
    one_mib = _exchange(world, _head(b"X-Big: " + b"a" * MIB))
    many = _exchange(world, _head(*(b"X-%d: 1" % i for i in range(10_000))))

    assert b" 200 " not in one_mib and b" 200 " not in many  # 400 or a reset: the gateway read 16 KiB, then hung up
    assert world.stack.gateway.is_running()


def test_more_header_lines_than_the_count_cap_are_answered_431(world: World) -> None:
    response = _exchange(world, _head(*(b"X-%d: 1" % i for i in range(150)), b"Connection: close"))

    assert response.startswith(b"HTTP/1.1 431 "), response[:200]
    assert b'"code":"headers_too_large"' in response and b"152 header lines" in response  # with Host and Connection


def _time_to_close(world: World, start: Callable[[socket.socket], None]) -> float:
    with _connect(world) as sock:
        began = time.monotonic()
        start(sock)
        received = _read_to_close(sock)
        assert received == b"", received[:200]  # closed without an answer
        return time.monotonic() - began


def _dribble(sock: socket.socket) -> None:
    """One byte of a head every 0.25 s, for longer than the deadline (the pace is the behaviour under test)."""

    def send() -> None:
        for byte in _head(b"X-Pad: " + b"a" * 100):
            try:
                sock.send(bytes([byte]))
            except OSError:
                return
            time.sleep(0.25)

    threading.Thread(target=send, daemon=True).start()


def _keep_alive_then_partial(sock: socket.socket) -> None:
    sock.sendall(_head())
    response = b""
    while not response.endswith(b'{"status":"ok"}'):  # the whole first response, head and body
        response += sock.recv(65536)
    assert response.startswith(b"HTTP/1.1 200 ")
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gat")  # the next request's head, never finished


@pytest.mark.parametrize(
    "start",
    [
        lambda sock: None,  # connects and sends nothing
        lambda sock: sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n"),  # half a head
        _dribble,  # keeps sending, too slowly
        _keep_alive_then_partial,  # a served request, then half of the next head
    ],
    ids=["silent", "half_a_head", "dribbling", "kept_alive_then_half_a_head"],
)
def test_a_slow_head_is_closed_after_the_header_timeout(world: World, start: Callable[[socket.socket], None]) -> None:
    elapsed_s = _time_to_close(world, start)

    assert HEADER_TIMEOUT_S - 0.1 <= elapsed_s <= HEADER_TIMEOUT_S + 3, elapsed_s


def test_fifty_unfinished_two_mib_heads_leave_the_gateways_memory_flat(world: World) -> None:
    gateway = psutil.Process(world.stack.gateway.process.pid)
    _exchange(world, _head(b"X-Warm: " + b"a" * MIB))  # allocator warm-up outside the measurement
    before = gateway.memory_info().rss
    sockets = [_connect(world) for _ in range(50)]
    chunk = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Big: " + b"a" * (2 * MIB)  # never finished

    def flood(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.sendall(chunk)

    threads = [threading.Thread(target=flood, args=(sock,)) for sock in sockets]
    for thread in threads:
        thread.start()
    peak = before
    for sock in sockets:
        _read_to_close(sock)  # each ends: the gateway hung up after 16 KiB, without waiting for the timeout
        peak = max(peak, gateway.memory_info().rss)
    for thread in threads:
        thread.join(timeout=30)
    for sock in sockets:
        sock.close()

    growth_mib = (peak - before) / MIB
    print(f"gateway RSS growth for 50 x 2 MiB unfinished heads: {growth_mib:.1f} MiB (peak)")
    assert growth_mib < 8, growth_mib
