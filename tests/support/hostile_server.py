"""Loopback HTTP servers for hostile-input tests: an input server with misbehaving routes, and a canary.

``input_server(directory, host)`` serves files under ``/files/NAME`` and misbehaves on purpose:
``/redirect?to=URL``, ``/loop/N`` (endless redirects), ``/status/CODE``, ``/hang`` (never answers),
``/drip`` (a byte every 50 ms), ``/endless`` (an unbounded body without a length), ``/declared-huge``
(a Content-Length of a terabyte), ``/cut-short`` (closes half way through its declared length).
``canary_server(host)`` answers every request with 200 and records its path: an address guard that
works means the canary is never reached.
"""

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import BaseServer
from urllib.parse import parse_qs, urlsplit

DRIP_INTERVAL_S = 0.05  # the slow server's pace (behaviour under test, not synchronisation)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class _Server6(_Server):
    address_family = socket.AF_INET6


class _InputHandler(BaseHTTPRequestHandler):
    directory: Path
    stopping: threading.Event

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        route, _, rest = parts.path.lstrip("/").partition("/")
        handler = getattr(self, f"_route_{route.replace('-', '_')}", None)
        if handler is None:
            self.send_error(404)
            return
        # The fetcher hanging up part-way is what several routes are for.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            handler(rest, parse_qs(parts.query))

    def _head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _route_files(self, name: str, _query: dict[str, list[str]]) -> None:
        path = self.directory / name
        if "/" in name or not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        self._head(200, {"Content-Type": "application/octet-stream", "Content-Length": str(len(body))})
        self.wfile.write(body)

    def _route_redirect(self, _rest: str, query: dict[str, list[str]]) -> None:
        self._head(int(query.get("status", ["302"])[0]), {"Location": query["to"][0], "Content-Length": "0"})

    def _route_loop(self, count: str, _query: dict[str, list[str]]) -> None:
        self._head(302, {"Location": f"/loop/{int(count) + 1}", "Content-Length": "0"})

    def _route_status(self, code: str, _query: dict[str, list[str]]) -> None:
        self._head(int(code), {"Content-Length": "0"})

    def _route_hang(self, _rest: str, _query: dict[str, list[str]]) -> None:
        self.stopping.wait(60)  # holds the connection without answering, until the server stops

    def _route_drip(self, _rest: str, _query: dict[str, list[str]]) -> None:
        self._head(200, {"Content-Length": "100000"})
        for _ in range(100000):
            if self.stopping.wait(DRIP_INTERVAL_S):
                return
            self.wfile.write(b"\x00")
            self.wfile.flush()

    def _route_endless(self, _rest: str, _query: dict[str, list[str]]) -> None:
        self.send_response(200)
        self.send_header("Connection", "close")  # close-delimited: no length to refuse up front
        self.end_headers()
        chunk = b"\x89PNG" + b"\x00" * 65532
        while not self.stopping.is_set():
            self.wfile.write(chunk)

    def _route_declared_huge(self, _rest: str, _query: dict[str, list[str]]) -> None:
        self._head(200, {"Content-Length": str(10**12)})
        self.wfile.write(b"\x00" * 1024)

    def _route_cut_short(self, _rest: str, _query: dict[str, list[str]]) -> None:
        body = (self.directory / "person.png").read_bytes()
        self._head(200, {"Content-Length": str(len(body))})
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True


@dataclass
class Canary:
    url: str
    hits: list[str] = field(default_factory=list)

    def hits_for(self, marker: str) -> list[str]:
        return [path for path in self.hits if marker in path]


@contextmanager
def _serve(server: BaseServer, stopping: threading.Event) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def input_server(directory: Path, host: str = "127.0.0.2") -> Iterator[str]:
    """Serve ``directory`` and the misbehaving routes on ``host``; yields ``http://HOST:PORT``."""
    stopping = threading.Event()
    handler = type("InputHandler", (_InputHandler,), {"directory": directory, "stopping": stopping})
    server = _Server((host, 0), handler)
    with _serve(server, stopping):
        yield f"http://{host}:{server.server_address[1]}"


@contextmanager
def canary_server(host: str = "127.0.0.1", port: int = 0) -> Iterator[Canary]:
    """Record every request's path; answers 200 with a small body.

    Bound to the input server's port on another loopback address, it catches any fetch that a URL
    trick (0.0.0.0, ::ffff:127.0.0.1, 2130706433, DNS rebinding) sends to the wrong address.
    """
    stopping = threading.Event()
    canary = Canary(url="")

    class CanaryHandler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            canary.hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server_class = _Server6 if ":" in host else _Server
    server = server_class((host, port), CanaryHandler)
    shown = f"[{host}]" if ":" in host else host
    canary.url = f"http://{shown}:{server.server_address[1]}"
    with _serve(server, stopping):
        yield canary
