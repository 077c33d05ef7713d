"""A loopback TCP proxy that stands for a stable Redis address (a Kubernetes Service, a DNS name).

``replace_upstream`` leaves every existing connection half-open and sends new ones to another server
(or, given None, closes them at once, as a refused connect looks to a client). A half-open socket
stays connected, but nothing sent on it is answered and no FIN or RST ever arrives. That is what
clients see when Redis is replaced on another node, or when a NAT or firewall forgets a connection:
on loopback a stopped redis-server always closes its sockets, so a test needs this proxy for it.
"""

import selectors
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class HalfOpeningProxy:
    """Forwards ``127.0.0.1:port`` to an upstream port; one thread, one selector."""

    def __init__(self, upstream_port: int | None) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port = int(self._listener.getsockname()[1])
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._selector.register(self._wake_reader, selectors.EVENT_READ)
        self._peers: dict[socket.socket, socket.socket] = {}  # forwarded pairs, both directions
        self._abandoned: list[socket.socket] = []  # half-open: kept open, never read or written again
        self._lock = threading.Lock()
        self._replace_requested: tuple[int | None] | None = None
        self._replace_done = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._thread.start()

    def replace_upstream(self, upstream_port: int | None) -> None:
        """Existing connections are left half-open; new ones go to ``upstream_port``. Returns once done."""
        done = threading.Event()
        with self._lock:
            self._replace_requested = (upstream_port,)
            self._replace_done = done
        self._wake_writer.send(b"r")
        if not done.wait(timeout=10):
            raise RuntimeError("the proxy thread did not switch upstream")

    def close(self) -> None:
        self._stopping = True
        self._wake_writer.send(b"x")
        self._thread.join(timeout=10)
        for sock in [self._listener, self._wake_reader, self._wake_writer, *self._peers, *self._abandoned]:
            sock.close()

    def _run(self) -> None:
        while not self._stopping:
            for key, _ in self._selector.select(timeout=1.0):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    self._accept()
                elif sock is self._wake_reader:
                    sock.recv(64)
                    self._maybe_replace()
                elif sock in self._peers:
                    self._forward(sock)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        try:
            if self.upstream_port is None:
                raise ConnectionRefusedError
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        except OSError:
            client.close()  # as a refused connection looks to the client: closed at once
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ)
        self._peers[client], self._peers[upstream] = upstream, client

    def _forward(self, sock: socket.socket) -> None:
        peer = self._peers[sock]
        try:
            data = sock.recv(65536)
            if data:
                peer.settimeout(5.0)  # a peer that reads nothing for this long is as good as gone
                peer.sendall(data)
                peer.setblocking(False)
                return
        except OSError:
            pass
        for end in (sock, peer):  # one side closed: close the other, as a real connection would
            self._selector.unregister(end)
            del self._peers[end]
            end.close()

    def _maybe_replace(self) -> None:
        with self._lock:
            request, self._replace_requested = self._replace_requested, None
            done = self._replace_done
        if request is None:
            return
        for sock in list(self._peers):
            self._selector.unregister(sock)
            self._abandoned.append(sock)
        self._peers.clear()
        self.upstream_port = request[0]
        done.set()


@contextmanager
def half_opening_proxy(upstream_port: int | None) -> Iterator[HalfOpeningProxy]:
    """Run a proxy to ``upstream_port`` until the block ends."""
    proxy = HalfOpeningProxy(upstream_port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()
