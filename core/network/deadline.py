"""ExchangeDeadline: a total time limit for one HTTP exchange, however the other side paces its bytes.

httpx's timeouts are per operation: a server that sends one byte within each read timeout keeps a
request going for ever (a webhook receiver answering 200 a byte at a time held an attempt for 14 s
with a 2 s timeout, issue 19). Given as the request's ``trace`` extension, this is handed each
connection httpcore opens, and at the deadline shuts its socket down, so the blocked read returns.
"""

import contextlib
import socket
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

_NEW_STREAM_EVENTS = ("connection.connect_tcp.complete", "connection.start_tls.complete")


class ExchangeDeadline:
    """Use as a context manager around the exchange; pass ``trace`` in the request's extensions."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._deadline = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> "ExchangeDeadline":
        self._timer.start()
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._timer.cancel()

    def remaining_s(self) -> float:
        return max(self._deadline - time.monotonic(), 0.0)

    def expired(self) -> bool:
        return self._fired or time.monotonic() >= self._deadline

    def trace(self, event_name: str, info: Mapping[str, Any]) -> None:
        """httpcore's trace hook: remember the socket of each new connection (or shut it at once if late)."""
        if event_name not in _NEW_STREAM_EVENTS or info.get("return_value") is None:
            return
        sock = info["return_value"].get_extra_info("socket")
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets.append(sock)
            late = self._fired
        if late:
            _shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self._fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        # The plain socket's shutdown, also for TLS: SSLSocket.shutdown would drop its state under the
        # reading thread; this only makes the blocked recv return.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
