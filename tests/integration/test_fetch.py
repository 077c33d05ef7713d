"""fetch_to_file against a real HTTP server on 127.0.0.1 (allow-listed): success, caps, deadlines, redirects.

Names resolve through an injected resolver; the network guard fails any connection off loopback.
"""

import contextlib
import http.server
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.contract.networks import parse_allowed_networks
from core.errors import ForbiddenAddressError, InputTooLargeError, InputUnreachableError
from core.network.download import fetch_to_file
from tests.support.network import forbid_non_loopback_traffic
from tests.support.tls import Certificates, make_certificates

BODY = bytes(range(256)) * 8  # 2048 bytes
LOOPBACK = parse_allowed_networks("127.0.0.0/8")


@pytest.fixture(autouse=True)
def _no_traffic(monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_non_loopback_traffic(monkeypatch)


@dataclass
class Server:
    port: int
    stop: threading.Event
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Host header)
    stalled: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str, host: str = "media.test") -> str:
        return f"http://{host}:{self.port}{path}"


def resolver(host: str, port: int) -> list[str]:
    table = {
        "media.test": ["127.0.0.1"],
        "other.test": ["127.0.0.1"],
        "internal.test": ["10.0.0.5"],
        "dark.test": ["127.0.0.2"],  # nothing listens there: the server is bound to 127.0.0.1 only
        "fallback.test": ["127.0.0.2", "127.0.0.1"],
    }
    if host not in table:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return table[host]


def _handler(server: Server) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            server.requests.append((self.path, self.headers.get("Host", "")))
            with contextlib.suppress(OSError):  # the client gave up, as it should in several tests
                self._route()

        def _route(self) -> None:
            path = self.path
            if path == "/ok.png":
                self._headers(200, {"Content-Type": "image/png", "Content-Length": str(len(BODY))})
                self.wfile.write(BODY)
            elif path == "/host":
                body = self.headers.get("Host", "").encode()
                self._headers(200, {"Content-Length": str(len(body))})
                self.wfile.write(body)
            elif path == "/chunked":
                self._headers(200, {"Transfer-Encoding": "chunked"})
                for _ in range(8):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(BODY), BODY))
                self.wfile.write(b"0\r\n\r\n")
            elif path == "/close-delimited":
                self._headers(200, {"Connection": "close"})
                for _ in range(8):
                    self.wfile.write(BODY)
                self.close_connection = True
            elif path == "/declared-huge":
                self._headers(200, {"Content-Length": str(10**12)})
                server.stop.wait(30)  # sends no body; a client that waits for one hangs
            elif path == "/trickle":
                self._headers(200, {"Content-Length": "100000"})
                while not server.stop.wait(0.01):
                    self.wfile.write(b"x")
                    self.wfile.flush()
            elif path == "/stall":
                self._headers(200, {"Content-Length": "100000"})
                self.wfile.write(b"x" * 100)
                self.wfile.flush()
                server.stalled.set()
                server.stop.wait(30)
            elif path == "/trickle-then-stall":
                self._headers(200, {"Content-Length": "100000"})
                started = time.monotonic()
                while time.monotonic() - started < 0.7 and not server.stop.wait(0.01):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                server.stalled.set()
                server.stop.wait(30)
            elif path == "/dribble-head":
                # The status line and headers a byte every 20 ms: each read is quick, the head takes 1.5 s.
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-Pad: " + b"a" * 40 + b"\r\n\r\nx":
                    if server.stop.wait(0.02):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
            elif path.startswith("/hops/"):
                left = int(path.rsplit("/", 1)[1])
                target = "/ok.png" if left == 0 else f"{left - 1}"  # relative Location
                self._headers(302, {"Location": target, "Content-Length": "0"})
            elif path == "/to-internal":
                self._headers(302, {"Location": f"http://internal.test:{server.port}/ok.png", "Content-Length": "0"})
            elif path == "/to-other":
                self._headers(307, {"Location": f"http://other.test:{server.port}/host", "Content-Length": "0"})
            elif path == "/to-file":
                self._headers(302, {"Location": "file:///etc/passwd", "Content-Length": "0"})
            else:
                self._headers(404, {"Content-Length": "0"})

        def _headers(self, status: int, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()

    return Handler


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(port=0, stop=threading.Event())
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    state.stop.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    return make_certificates(tmp_path, "media.test")


@pytest.fixture
def tls_server(certificates: Certificates) -> Iterator[Server]:
    """The same routes over https, with a certificate for media.test only (no IP address in it)."""
    state = Server(port=0, stop=threading.Event())
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    httpd.socket = certificates.server_context().wrap_socket(httpd.socket, server_side=True)
    httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    state.stop.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def fetch(url: str, dest: Path, **overrides: object):
    options: dict = {"max_bytes": 10_000, "timeout_s": 5.0, "allowed_networks": LOOPBACK, "resolver": resolver}
    options.update(overrides)
    return fetch_to_file(url, dest, label="image", **options)


def test_fetch_downloads_the_file_and_reports_where_from(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "in" / "image.png"
    result = fetch(server.url("/ok.png"), dest)
    assert dest.read_bytes() == BODY
    assert result.size_bytes == len(BODY)
    assert result.content_type == "image/png"
    assert result.resolved_ip == "127.0.0.1"
    assert result.final_url == server.url("/ok.png")
    assert 0 < result.elapsed_s < 5
    assert sorted(p.name for p in dest.parent.iterdir()) == ["image.png"]


def test_fetch_connects_to_the_pinned_address_with_the_original_host_header(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "host.txt"
    fetch(server.url("/host"), dest)
    assert dest.read_text() == f"media.test:{server.port}"


@pytest.mark.parametrize("path", ["/chunked", "/close-delimited"])
def test_fetch_caps_bytes_while_streaming_without_content_length(server: Server, tmp_path: Path, path: str) -> None:
    dest = tmp_path / "big.bin"
    with pytest.raises(InputTooLargeError, match="larger than the 5,000-byte limit"):
        fetch(server.url(path), dest, max_bytes=5_000)
    assert list(tmp_path.iterdir()) == []
    # The same body under a larger cap arrives whole: the cap, not the server, stopped it.
    assert fetch(server.url(path), dest, max_bytes=len(BODY) * 8).size_bytes == len(BODY) * 8


def test_fetch_refuses_a_declared_length_over_the_cap_before_reading(server: Server, tmp_path: Path) -> None:
    # The server never sends the body: reading it would end in the read timeout, not this error.
    with pytest.raises(InputTooLargeError, match=r"larger than the [\d,]+-byte limit"):
        fetch(server.url("/declared-huge"), tmp_path / "x.bin", read_timeout_s=10)
    assert list(tmp_path.iterdir()) == []


def test_fetch_enforces_the_total_deadline_on_a_trickling_server(server: Server, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(InputUnreachableError, match=re.escape("did not finish downloading within 0.3 s")):
        fetch(server.url("/trickle"), tmp_path / "x.bin", max_bytes=10**6, timeout_s=0.3)
    assert time.monotonic() - started < 3
    assert list(tmp_path.iterdir()) == []


def test_fetch_deadline_cuts_a_stalled_read_shorter_than_the_read_timeout(server: Server, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(InputUnreachableError, match=re.escape("within 0.5 s")):
        fetch(server.url("/stall"), tmp_path / "x.bin", max_bytes=10**6, timeout_s=0.5, read_timeout_s=20)
    assert server.stalled.is_set()
    assert time.monotonic() - started < 5
    assert list(tmp_path.iterdir()) == []


def test_fetch_deadline_cuts_a_late_stall_shorter_than_the_clipped_read_timeout(server: Server, tmp_path: Path) -> None:
    # The read timeout is clipped to the 1.0 s left when the request starts; the stall begins 0.7 s in,
    # so without the deadline watchdog the download would end after about 1.7 s.
    started = time.monotonic()
    with pytest.raises(InputUnreachableError, match="within 1 s"):
        fetch(server.url("/trickle-then-stall"), tmp_path / "x.bin", max_bytes=10**6, timeout_s=1.0)
    assert server.stalled.is_set()
    assert time.monotonic() - started < 1.5


def test_fetch_deadline_cuts_a_server_dribbling_its_response_head(server: Server, tmp_path: Path) -> None:
    # httpx's timeouts are per read, and the head is read before any body check runs (issue 19).
    started = time.monotonic()
    with pytest.raises(InputUnreachableError, match=re.escape("within 0.5 s")):
        fetch(server.url("/dribble-head"), tmp_path / "x.bin", max_bytes=10**6, timeout_s=0.5, read_timeout_s=20)
    assert time.monotonic() - started < 1.2
    assert list(tmp_path.iterdir()) == []


def test_fetch_follows_relative_redirects_up_to_the_limit(server: Server, tmp_path: Path) -> None:
    # /hops/2 -> /hops/1 -> /hops/0 -> /ok.png: three redirects.
    result = fetch(server.url("/hops/2"), tmp_path / "a.png", max_redirects=3)
    assert result.final_url == server.url("/ok.png")
    assert [path for path, _ in server.requests] == ["/hops/2", "/hops/1", "/hops/0", "/ok.png"]
    with pytest.raises(InputUnreachableError, match="redirected more than 2 times"):
        fetch(server.url("/hops/2"), tmp_path / "b.png", max_redirects=2)
    assert not (tmp_path / "b.png").exists()


def test_fetch_revets_each_redirect_and_never_connects_to_a_forbidden_target(server: Server, tmp_path: Path) -> None:
    with pytest.raises(ForbiddenAddressError, match=re.escape("internal.test resolves to 10.0.0.5, a private address")):
        fetch(server.url("/to-internal"), tmp_path / "x.png")
    # The guard would have raised ForbiddenTestTrafficError on a connect to 10.0.0.5; the server saw one hop.
    assert [path for path, _ in server.requests] == ["/to-internal"]
    with pytest.raises(ForbiddenAddressError, match=re.escape("internal.test resolves to 10.0.0.5, a private address")):
        fetch(server.url("/to-internal"), tmp_path / "x.png", allowed_networks=parse_allowed_networks("127.0.0.1/32"))


def test_fetch_redirect_to_another_host_pins_its_address_and_sends_its_name(server: Server, tmp_path: Path) -> None:
    result = fetch(server.url("/to-other"), tmp_path / "host.txt")
    assert result.final_url == server.url("/host", host="other.test")
    assert (tmp_path / "host.txt").read_text() == f"other.test:{server.port}"


def test_fetch_connects_only_to_the_resolved_addresses_in_order(server: Server, tmp_path: Path) -> None:
    # dark.test's one address refuses: the fetch fails there rather than finding the server some other way.
    with pytest.raises(InputUnreachableError, match=r"connecting to 127.0.0.2 failed"):
        fetch(server.url("/ok.png", host="dark.test"), tmp_path / "x.png")
    result = fetch(server.url("/ok.png", host="fallback.test"), tmp_path / "y.png")
    assert result.resolved_ip == "127.0.0.1"
    assert server.requests == [("/ok.png", f"fallback.test:{server.port}")]


def test_fetch_refuses_a_redirect_to_another_scheme(server: Server, tmp_path: Path) -> None:
    from core.errors import UnsupportedUrlError

    with pytest.raises(UnsupportedUrlError, match="file:"):
        fetch(server.url("/to-file"), tmp_path / "x.png")


def test_fetch_reports_http_errors_as_unreachable(server: Server, tmp_path: Path) -> None:
    with pytest.raises(InputUnreachableError, match="answered HTTP 404") as caught:
        fetch(server.url("/missing.png"), tmp_path / "x.png")
    assert caught.value.code == "input_unreachable"
    assert list(tmp_path.iterdir()) == []


def test_fetch_reports_a_refused_connection_as_unreachable(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once the socket closes
    with pytest.raises(InputUnreachableError, match=r"cannot be reached \(connecting to 127.0.0.1 failed"):
        fetch(f"http://media.test:{port}/a.png", tmp_path / "x.png")


def test_fetch_without_allow_list_refuses_the_loopback_server(server: Server, tmp_path: Path) -> None:
    with pytest.raises(ForbiddenAddressError, match="a loopback address"):
        fetch(server.url("/ok.png"), tmp_path / "x.png", allowed_networks=[])
    assert server.requests == []


def test_https_fetch_verifies_the_certificate_for_the_name_while_connecting_to_the_pinned_address(
    tls_server: Server, certificates: Certificates, tmp_path: Path
) -> None:
    # The certificate names media.test and no IP: this succeeds only if SNI and verification use the name.
    url = f"https://media.test:{tls_server.port}/host"
    result = fetch(url, tmp_path / "host.txt", ssl_context=certificates.client_context())
    assert result.resolved_ip == "127.0.0.1"
    assert (tmp_path / "host.txt").read_text() == f"media.test:{tls_server.port}"


def test_https_fetch_refuses_a_certificate_for_another_name(
    tls_server: Server, certificates: Certificates, tmp_path: Path
) -> None:
    url = f"https://other.test:{tls_server.port}/host"
    with pytest.raises(InputUnreachableError, match="CERTIFICATE_VERIFY_FAILED"):
        fetch(url, tmp_path / "host.txt", ssl_context=certificates.client_context())
    assert tls_server.requests == []
    assert not (tmp_path / "host.txt").exists()
