"""Limits on what a client may make the gateway hold before a request even starts (issue 19).

uvicorn's default parser (httptools) keeps every header of a request, however large or many (a 1 MiB
header and 10,000 headers were answered 200), and no uvicorn parser has a deadline for the request
head: a client that sends headers slowly, or nothing, holds its connection for ever. So the gateway
runs uvicorn's h11 parser, whose buffer for an unfinished head is capped (``http_max_header_bytes``,
answered 400 and closed), with a timer for the head (``http_header_timeout_s``), and the app answers
431 to more than ``http_max_headers`` header lines or to a whole head over the byte cap.
"""

import asyncio
import logging

import h11
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from service.errors import error_response

logger = logging.getLogger(__name__)


class HeaderDeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head.

    The clock starts when the connection opens, and on a kept-alive connection when the first byte of
    the next request arrives (until then uvicorn's own keep-alive timeout closes an idle connection).
    """

    header_timeout_s: float = 10.0  # set per server by ``header_deadline_protocol``

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._start_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._stop_head_timer()  # the head is complete: from here the app's own limits apply
        elif self._head_timer is None:
            self._start_head_timer()  # first bytes of the next request on a kept-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._on_head_timeout)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _on_head_timeout(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            peer = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            logger.info("closed the connection of %s: no complete request head in %g s", peer, self.header_timeout_s)
            self.transport.close()


def header_deadline_protocol(header_timeout_s: float) -> type[HeaderDeadlineH11Protocol]:
    """The protocol class for ``uvicorn.run(http=...)`` with this server's head deadline."""
    return type("HeaderDeadlineH11Protocol", (HeaderDeadlineH11Protocol,), {"header_timeout_s": header_timeout_s})


class HeaderLimitsMiddleware:
    """Answers 431 to more than ``max_headers`` header lines, or headers over ``max_header_bytes`` in all.

    h11 caps only an unfinished head; a whole head that arrives in one read (asyncio reads up to 256 KiB)
    is parsed whatever its size, so its size is checked here too, before any route reads a header.
    """

    def __init__(self, app: ASGIApp, max_headers: int, max_header_bytes: int) -> None:
        self.app = app
        self.max_headers = max_headers
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (problem := self._problem(scope["headers"])) is not None:
            await error_response(431, "headers_too_large", problem)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _problem(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        if len(headers) > self.max_headers:
            return f"the request has {len(headers)} header lines; the limit is {self.max_headers}"
        size = sum(len(name) + len(value) + 4 for name, value in headers)  # "name: value\r\n"
        if size > self.max_header_bytes:
            return f"the request's headers are {size} bytes; the limit is {self.max_header_bytes}"
        return None
