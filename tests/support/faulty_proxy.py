"""An HTTP proxy on 127.0.0.1 in front of a real gateway that misbehaves on cue, for the client's retry tests.

Each ``Fault`` matches requests by method and path prefix and acts on the next ``times`` of them:
``answer`` sends a canned status (a 503 with Retry-After, a 429) without asking the gateway; ``drop`` closes
the connection before asking it; ``drop_answer`` lets the gateway handle the request and then closes the
connection instead of passing the answer on (the client cannot tell whether anything happened); ``hold``
keeps the request, never asking the upstream, until ``release()`` or the proxy's end, then closes the
connection (a client stuck inside that request, e.g. a worker mid-upload, for a test to kill). Every
request is recorded with its arrival time, whatever was done with it. It also stands in front of moto's S3
server (S3Storage's requests pass unchanged over plain HTTP).
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length", "content-encoding"}


@dataclass
class Fault:
    method: str
    path_prefix: str
    action: Literal["answer", "drop", "drop_answer", "hold"]
    times: int = 1
    path_suffix: str = ""  # and the path (without its query) ends with this
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"error": {"code": "not_ready", "message": "injected by the test proxy"}}'


@dataclass(frozen=True)
class SeenRequest:
    at: float  # time.monotonic() on arrival
    method: str
    path: str
    headers: dict[str, str]
    action: str  # the fault's action, or "forward"


class FaultyProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.faults: list[Fault] = []
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=upstream, trust_env=False, timeout=120)
        self._released = threading.Event()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def release(self) -> None:
        """End every held request (and any held later): their connections are closed."""
        self._released.set()

    def seen(self, method: str, path_prefix: str = "/") -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                matches = path.startswith(fault.path_prefix) and path.split("?")[0].endswith(fault.path_suffix)
                if fault.times > 0 and fault.method == method and matches:
                    fault.times -= 1
                    return fault
        return None

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        method, path = handler.command, handler.path
        fault = self._take_fault(method, path)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        action = fault.action if fault else "forward"
        with self._lock:
            self.requests.append(SeenRequest(time.monotonic(), method, path, headers, action))
        if fault is not None and fault.action == "hold":
            self._released.wait()
        if fault is not None and fault.action in ("drop", "hold"):
            handler.close_connection = True
            return
        if fault is not None and fault.action == "answer":
            self._write(handler, fault.status, fault.headers, fault.body)
            return
        forwarded = {name: value for name, value in handler.headers.items() if name.lower() not in HOP_BY_HOP}
        response = self._http.request(method, path, headers=forwarded, content=body)
        if fault is not None:  # drop_answer: the gateway has done it; the client never hears
            handler.close_connection = True
            return
        kept = {name: value for name, value in response.headers.items() if name.lower() not in HOP_BY_HOP}
        self._write(handler, response.status_code, kept, response.content)

    @staticmethod
    def _write(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


@contextmanager
def faulty_proxy(upstream: str) -> Iterator[tuple[FaultyProxy, str]]:
    """Run a proxy to ``upstream`` until the block ends; yields it and its base URL."""
    proxy = FaultyProxy(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the gateway itself

        def do_GET(self) -> None:
            proxy.handle(self)

        do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="faulty-proxy", daemon=True)
    thread.start()
    try:
        yield proxy, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        proxy.release()
        server.shutdown()
        server.server_close()
        thread.join()
        proxy._http.close()
