"""A real webhook receiver on 127.0.0.1: verifies every request with the standardwebhooks library,
records it, and answers what the test scripts (e.g. 500 three times, then 200, or a redirect)."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass(frozen=True)
class Received:
    webhook_id: str
    type: str
    body: dict[str, Any]
    verified: bool
    answered: int


@dataclass
class Receiver:
    url: str
    secret: str
    # Decides the answer from the verified request (id, type) and what came before; default 200.
    answer: Callable[["Receiver", str, str], int] = lambda receiver, webhook_id, event_type: 200
    location: str | None = None  # sent as Location with a 3xx answer (a receiver that redirects)
    # Set: the answer goes out one byte per this many seconds (a hostile receiver; the pace is the behaviour).
    drip_interval_s: float | None = None
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.verified and 200 <= r.answered < 300]

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.requests)


@contextmanager
def webhook_receiver(secret: str) -> Iterator[Receiver]:
    receiver = Receiver(url="", secret=secret)
    verifier = Webhook(secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {name.lower(): value for name, value in self.headers.items()}
            try:
                payload, verified = verifier.verify(body, headers), True
            except Exception:
                payload, verified = json.loads(body or b"{}"), False
            webhook_id = headers.get("webhook-id", "")
            status = receiver.answer(receiver, webhook_id, payload.get("type", "")) if verified else 400
            with receiver.lock:
                receiver.requests.append(Received(webhook_id, payload.get("type", ""), payload, verified, status))
            if receiver.drip_interval_s is not None:
                self._drip(f"HTTP/1.1 {status} OK\r\ncontent-length: 0\r\n\r\n".encode(), receiver.drip_interval_s)
                return
            self.send_response(status)
            if receiver.location is not None and 300 <= status < 400:
                self.send_header("location", receiver.location)
            self.send_header("content-length", "0")
            self.end_headers()

        def _drip(self, answer: bytes, interval_s: float) -> None:
            self.close_connection = True
            for byte in answer:
                try:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                except OSError:
                    return  # the sender gave up
                time.sleep(interval_s)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
