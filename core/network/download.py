"""Safe download of user-supplied input URLs (service-practices §7): each hop vetted by the URL guard, the
connection pinned to the vetted address, manual redirects, a byte cap and a deadline for the whole download.

Imports nothing heavy (no torch, onnxruntime or av).
"""

import contextlib
import os
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx

from core.contract.ascii_numbers import parse_ascii_int
from core.errors import InputTooLargeError, InputUnreachableError
from core.network.deadline import ExchangeDeadline
from core.network.url_guard import IPAddress, IPNetwork, Resolver, VettedUrl, default_resolver, unmapped, vet_url

_REDIRECT_STATUSES = {301, 302, 303, 307, 308}


@dataclass(frozen=True)
class FetchResult:
    """One finished download. ``final_url`` is the URL after redirects; ``resolved_ip`` the address used."""

    final_url: str
    resolved_ip: str
    size_bytes: int
    content_type: str | None
    elapsed_s: float


def fetch_to_file(
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    timeout_s: float,
    allowed_networks: Sequence[IPNetwork],
    resolver: Resolver = default_resolver,
    max_redirects: int = 3,
    connect_timeout_s: float = 5.0,
    read_timeout_s: float = 15.0,
    ssl_context: ssl.SSLContext | None = None,
    label: str = "input",
) -> FetchResult:
    """Download ``url`` to ``dest`` (written via a temp file; nothing left behind on failure).

    Args:
        timeout_s: total deadline for the whole download, redirects included.
        label: names the input in messages ("image" -> "the image URL ...").
        ssl_context: certificate trust for https (default: httpx's, certifi).

    Raises:
        UnsupportedUrlError, ForbiddenAddressError, InputUnreachableError (see ``vet_url``; also refused
        connections, timeouts, non-2xx statuses, too many redirects), InputTooLargeError (over ``max_bytes``).
    """
    start = time.monotonic()
    deadline = start + timeout_s
    # trust_env=False: no proxy from the environment may carry the request elsewhere, and no .netrc.
    # The exchange deadline also cuts a response head that a server sends a byte at a time (issue 19).
    with (
        ExchangeDeadline(timeout_s) as exchange,
        httpx.Client(trust_env=False, follow_redirects=False, verify=ssl_context or True) as client,
    ):
        current = url
        for _hop in range(max_redirects + 1):
            target = vet_url(current, allowed_networks=allowed_networks, resolver=resolver, label=label)
            timeouts = _hop_timeouts(deadline - time.monotonic(), connect_timeout_s, read_timeout_s, label, timeout_s)
            try:
                response, address = _open(client, target, timeouts, label, exchange.trace)
            except InputUnreachableError:
                if exchange.expired():  # the deadline shut the socket while the head was still coming
                    raise InputUnreachableError(
                        f"the {label} URL's server did not answer in time (within {timeout_s:g} s)"
                    ) from None
                raise
            with contextlib.closing(response):
                if response.status_code in _REDIRECT_STATUSES:
                    current = _next_location(response, target, label)
                    continue
                if not 200 <= response.status_code < 300:
                    raise InputUnreachableError(
                        f"the {label} URL answered HTTP {response.status_code} ({response.reason_phrase}); "
                        "it must answer 200 with the file"
                    )
                size_bytes = _save(response, dest, max_bytes, deadline, label, timeout_s)
                return FetchResult(
                    final_url=current,
                    resolved_ip=str(address),
                    size_bytes=size_bytes,
                    content_type=response.headers.get("content-type"),
                    elapsed_s=time.monotonic() - start,
                )
        raise InputUnreachableError(
            f"the {label} URL redirected more than {max_redirects} times; give the final URL of the file"
        )


def _hop_timeouts(remaining_s: float, connect_s: float, read_s: float, label: str, total_s: float) -> httpx.Timeout:
    if remaining_s <= 0:
        raise _deadline_error(label, total_s)
    return httpx.Timeout(
        connect=min(connect_s, remaining_s),
        read=min(read_s, remaining_s),
        write=min(read_s, remaining_s),
        pool=min(connect_s, remaining_s),
    )


def _open(
    client: httpx.Client, target: VettedUrl, timeouts: httpx.Timeout, label: str, trace: Callable[..., None]
) -> tuple[httpx.Response, IPAddress]:
    """Send the GET to the vetted addresses in turn (pinned: no second DNS lookup), Host/SNI = the name."""
    failure: httpx.TransportError | None = None
    for address in target.addresses:
        connect_to = unmapped(address)
        literal = f"[{connect_to}]" if connect_to.version == 6 else str(connect_to)
        request = client.build_request(
            "GET",
            f"{target.scheme}://{literal}:{target.port}{target.request_target}",
            # identity: the byte cap counts what lands on disk, and no decompression bomb is inflated.
            headers={"Host": target.host_header, "Accept-Encoding": "identity"},
            timeout=timeouts,
            # httpcore uses sni_hostname for TLS SNI and for certificate hostname verification.
            extensions={"sni_hostname": target.host, "trace": trace},
        )
        try:
            return client.send(request, stream=True), address
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            failure = exc  # try the host's next address, as a browser would
        except httpx.TimeoutException as exc:
            raise InputUnreachableError(f"the {label} URL's server did not answer in time") from exc
        except httpx.TransportError as exc:
            raise InputUnreachableError(f"the {label} URL's server broke the connection: {exc}") from exc
    shown = ", ".join(str(address) for address in target.addresses)
    reason = "timed out" if isinstance(failure, httpx.ConnectTimeout) else f"failed: {failure}"
    raise InputUnreachableError(
        f"the {label} URL's host {target.host} cannot be reached (connecting to {shown} {reason})"
    ) from failure


def _next_location(response: httpx.Response, target: VettedUrl, label: str) -> str:
    location = response.headers.get("location")
    if not location:
        raise InputUnreachableError(f"the {label} URL answered HTTP {response.status_code} without a Location")
    # Relative Locations are resolved against the URL as the user wrote it, not the pinned address.
    return urljoin(target.url, location)


def _save(
    response: httpx.Response,
    dest: Path,
    max_bytes: int,
    deadline: float,
    label: str,
    total_s: float,
) -> int:
    """Stream the body into a temp file beside ``dest``, then rename; returns the byte count."""
    too_large = InputTooLargeError(f"the {label} URL's file is larger than the {max_bytes:,}-byte limit")
    declared = parse_ascii_int(response.headers.get("content-length"), max_digits=30)
    if declared is not None and declared > max_bytes:
        raise too_large
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    size_bytes = 0
    watchdog = _Watchdog(response, deadline)
    try:
        with os.fdopen(fd, "wb") as tmp:
            try:
                # iter_raw() without a size yields each network read (a size would buffer, delaying both
                # checks); no content decoding; chunked and close-delimited bodies are counted too.
                for chunk in response.iter_raw():
                    size_bytes += len(chunk)
                    if size_bytes > max_bytes:
                        raise too_large
                    if watchdog.expired():
                        raise _deadline_error(label, total_s)
                    tmp.write(chunk)
            except httpx.HTTPError as exc:
                if watchdog.expired():
                    raise _deadline_error(label, total_s) from exc
                raise InputUnreachableError(f"the {label} URL's download broke off: {exc}") from exc
            # A close-delimited body reads the watchdog's shutdown as a normal end: not a success.
            if watchdog.expired():
                raise _deadline_error(label, total_s)
        os.replace(tmp_name, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    finally:
        watchdog.cancel()
    return size_bytes


def _deadline_error(label: str, total_s: float) -> InputUnreachableError:
    return InputUnreachableError(f"the {label} URL did not finish downloading within {total_s:g} s")


class _Watchdog:
    """Shuts the socket down at the deadline, so a server that stalls mid-body cannot outlast it.

    The per-chunk check alone would let one blocked read run for the whole read timeout.
    """

    def __init__(self, response: httpx.Response, deadline: float) -> None:
        self._deadline = deadline
        self._fired = threading.Event()
        stream = response.extensions.get("network_stream")
        self._sock = stream.get_extra_info("socket") if stream is not None else None
        self._timer = threading.Timer(max(deadline - time.monotonic(), 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def expired(self) -> bool:
        return self._fired.is_set() or time.monotonic() >= self._deadline

    def cancel(self) -> None:
        self._timer.cancel()

    def _fire(self) -> None:
        self._fired.set()
        if isinstance(self._sock, socket.socket):
            with contextlib.suppress(OSError):
                # The plain socket's shutdown, also for TLS: SSLSocket.shutdown would drop its state
                # under the reading thread; this only makes the blocked recv return.
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
