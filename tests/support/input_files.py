"""The inputs a test job fetches, served on loopback: person.png, drive.mp4 of N frames and garbage.mp4.

``InputServer.holding(name)`` holds the next request for a file until the test releases it with a status,
so a test can catch a worker in the middle of a download.
"""

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.media import moving_person_frames, person_image, write_garbage, write_image, write_video

HOLD_LIMIT_S = 120.0  # a held request a test forgot to release still ends, with its status


def write_inputs(directory: Path, *, num_frames: int) -> Path:
    """person.png (200x150), drive.mp4 (``num_frames`` frames of 96x128 at 24 fps) and garbage.mp4."""
    write_image(directory / "person.png", person_image(200, 150, seed=1))
    write_video(directory / "drive.mp4", moving_person_frames(num_frames, 96, 128, seed=2), fps=24)
    write_garbage(directory / "garbage.mp4")
    return directory


@dataclass
class HeldRequest:
    """One request held by the server: ``arrived`` is set when it comes, ``release`` answers it."""

    name: str
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    status: int = 503

    def release(self, status: int) -> None:
        self.status = status
        self.released.set()


class _HoldingHandler(SimpleHTTPRequestHandler):
    server_holds: dict[str, HeldRequest]
    holds_lock: threading.Lock

    def do_GET(self) -> None:
        with self.holds_lock:
            held = self.server_holds.pop(self.path.lstrip("/"), None)
        if held is None:
            super().do_GET()
            return
        held.arrived.set()
        held.released.wait(HOLD_LIMIT_S)
        self.send_error(held.status)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class InputServer:
    url: str
    _holds: dict[str, HeldRequest]
    _lock: threading.Lock

    @contextmanager
    def holding(self, name: str) -> Iterator[HeldRequest]:
        """Hold the next GET of ``name`` until released; on leaving, an unused hold is dropped and any held
        request answered (503 unless released with another status)."""
        held = HeldRequest(name)
        with self._lock:
            self._holds[name] = held
        try:
            yield held
        finally:
            with self._lock:
                self._holds.pop(name, None)
            held.released.set()


@contextmanager
def input_server(directory: Path) -> Iterator[InputServer]:
    """Serve ``directory`` on 127.0.0.1 until the block ends."""
    holds: dict[str, HeldRequest] = {}
    lock = threading.Lock()
    handler = type("Handler", (_HoldingHandler,), {"server_holds": holds, "holds_lock": lock})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
    server.daemon_threads = True  # a held request does not keep the test run alive
    thread = threading.Thread(target=server.serve_forever, name="input-server", daemon=True)
    thread.start()
    try:
        yield InputServer(f"http://127.0.0.1:{server.server_address[1]}", holds, lock)
    finally:
        for held in list(holds.values()):
            held.released.set()
        server.shutdown()
        server.server_close()
        thread.join()
