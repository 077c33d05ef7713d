"""Serve local input files to a gateway on this machine, so ``submit`` can take paths as well as URLs.

Only the named files are served, from an ephemeral port on 127.0.0.1, for as long as the job is
being waited on. A local stack (``mimicmotion up``) allows loopback fetches; a remote one cannot
reach them, so that case is refused up front.
"""

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlsplit

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def is_local_file(value: str) -> bool:
    return "://" not in value and Path(value).is_file()


def is_loopback_url(url: str) -> bool:
    return urlsplit(url).hostname in LOOPBACK_HOSTS


@contextmanager
def serve_files(paths: list[Path]) -> Iterator[list[str]]:
    """Yield one http://127.0.0.1 URL per path; each URL carries a random token, nothing else is served."""
    token = secrets.token_urlsafe(16)
    routes = {f"/{token}/{index}/{quote(path.name)}": path for index, path in enumerate(paths)}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = routes.get(self.path)
            if path is None:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            data = path.read_bytes()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="submit-files", daemon=True)
    thread.start()
    try:
        yield [f"http://127.0.0.1:{server.server_address[1]}{route}" for route in routes]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
