"""Safe download of user-supplied input URLs (service-practices §7): http/https only, every resolved
address vetted, the connection pinned to the vetted address, manual redirects, byte cap and deadline.

Imports nothing heavy (no torch, onnxruntime or av).
"""

import contextlib
import ipaddress
import os
import re
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urljoin, urlsplit

import httpx

from core.contract.networks import IPAddress, IPNetwork
from core.errors import (
    ForbiddenAddressError,
    InputTooLargeError,
    InputUnreachableError,
    UnsupportedUrlError,
)

Resolver = Callable[[str, int], list[str]]

_SCHEMES = {"http": 80, "https": 443}
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}
# Metadata services answer on these; named apart so the message says what was at stake.
_METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")  # Python 3.11 calls it neither private nor global
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are an IPv4 address
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215, local use; is_global says True
# WHATWG URL: a host whose last label is a number is an IPv4 address (0x7f000001, 127.1, 0177.0.0.1).
_NUMERIC_LABEL = re.compile(r"(?:[0-9]+|0x[0-9a-f]*)")
_DNS_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


@dataclass(frozen=True)
class FetchResult:
    """One finished download. ``final_url`` is the URL after redirects; ``resolved_ip`` the address used."""

    final_url: str
    resolved_ip: str
    size_bytes: int
    content_type: str | None
    elapsed_s: float


@dataclass(frozen=True)
class VettedUrl:
    """A vetted URL: where to connect (pinned address) and what to call the host (Host, SNI)."""

    url: str
    scheme: str
    host: str
    port: int
    request_target: str
    addresses: list[IPAddress]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _SCHEMES[self.scheme] else f"{host}:{self.port}"


def default_resolver(host: str, port: int) -> list[str]:
    """All A and AAAA addresses of ``host``, in getaddrinfo's order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_problem(address: IPAddress) -> str | None:
    """Why ``address`` may not be fetched from ("a private address"), or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        # 1. IPv6 forms that carry an IPv4 address reach that address: judge the embedded one.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            problem = address_problem(embedded)
            return None if problem is None else f"{problem} ({embedded} inside an IPv6 address)"
    # 2. Most specific reason first; is_global alone misses multicast and CGNAT in Python 3.11.
    checks: list[tuple[bool, str]] = [
        (address in _METADATA_ADDRESSES, "the cloud metadata address"),
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address in _CGNAT, "a shared carrier-grade NAT address"),
        (address in _LOCAL_NAT64, "a local-use NAT64 address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "a non-public address"),
    ]
    return next((reason for failed, reason in checks if failed), None)


def is_allowed(address: IPAddress, allowed_networks: Sequence[IPNetwork]) -> bool:
    """True when ``address`` is public, or inside one of the explicitly allowed networks."""
    if address_problem(address) is None:
        return True
    candidates = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    # `in` is False across IP versions, so a v4 network never opens a v6 address by accident.
    return any(candidate in network for candidate in candidates for network in allowed_networks)


def vet_url(
    url: str,
    *,
    allowed_networks: Sequence[IPNetwork],
    resolver: Resolver = default_resolver,
    label: str = "input",
) -> VettedUrl:
    """Parse ``url``, resolve its host once and refuse it unless every address may be fetched from.

    Raises:
        UnsupportedUrlError: not http/https, userinfo, a malformed or non-standard numeric host.
        InputUnreachableError: the name does not resolve.
        ForbiddenAddressError: any resolved address is non-public and not allowed.
    """
    parts = _split_url(url, label)
    scheme = parts.scheme.lower()
    port = _port(parts, label)
    host, literal = _parse_host(parts, label)
    addresses = [literal] if literal is not None else _resolve(host, port, resolver, label)
    for address in addresses:
        if not is_allowed(address, allowed_networks):
            raise ForbiddenAddressError(
                f"the {label} URL's host {host} resolves to {address}, {address_problem(address)}; "
                "inputs must be publicly reachable"
            )
    request_target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return VettedUrl(url, scheme, host, port, request_target, addresses)


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
    with httpx.Client(trust_env=False, follow_redirects=False, verify=ssl_context or True) as client:
        current = url
        for _hop in range(max_redirects + 1):
            target = vet_url(current, allowed_networks=allowed_networks, resolver=resolver, label=label)
            timeouts = _hop_timeouts(deadline - time.monotonic(), connect_timeout_s, read_timeout_s, label, timeout_s)
            response, address = _open(client, target, timeouts, label)
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


def _split_url(url: str, label: str) -> SplitResult:
    # urlsplit silently drops tabs and newlines (WHATWG) and browsers read "\" as "/": refuse both.
    if _BAD_URL_CHARS.search(url):
        raise UnsupportedUrlError(f"the {label} URL contains spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UnsupportedUrlError(f"the {label} URL cannot be parsed ({exc})") from exc
    if parts.scheme.lower() not in _SCHEMES:
        shown = f"{parts.scheme}:" if parts.scheme else "no scheme"
        raise UnsupportedUrlError(f"the {label} URL uses {shown}; only http:// and https:// URLs are fetched")
    if "@" in parts.netloc:
        raise UnsupportedUrlError(
            f"the {label} URL contains a user name or password (user@host); "
            "use a URL that needs no credentials, such as a presigned URL"
        )
    if not parts.hostname:
        raise UnsupportedUrlError(f"the {label} URL has no host")
    return parts


def _port(parts: SplitResult, label: str) -> int:
    try:
        port = parts.port
    except ValueError as exc:
        raise UnsupportedUrlError(f"the {label} URL has an invalid port ({exc})") from exc
    if port == 0:
        raise UnsupportedUrlError(f"the {label} URL has port 0")
    return port if port is not None else _SCHEMES[parts.scheme.lower()]


def _parse_host(parts: SplitResult, label: str) -> tuple[str, IPAddress | None]:
    """(ASCII host name or address text, the address when the host is an IP literal)."""
    raw = parts.hostname or ""
    if "[" in parts.netloc:
        # 1. Bracketed: an IPv6 literal, nothing else; zone ids (%eth0) name local interfaces.
        try:
            address6 = ipaddress.IPv6Address(raw)
        except ValueError as exc:
            raise UnsupportedUrlError(f"the {label} URL's host [{raw}] is not an IPv6 address") from exc
        if address6.scope_id:
            raise UnsupportedUrlError(f"the {label} URL's host [{raw}] has an IPv6 zone id")
        return str(address6), address6
    # 2. IDNA first: fullwidth digits and other lookalikes normalise to ASCII before any check.
    try:
        host = raw.encode("idna").decode("ascii").lower() if not raw.isascii() else raw.lower()
    except UnicodeError as exc:
        raise UnsupportedUrlError(f"the {label} URL's host {raw!r} is not a valid host name") from exc
    host = host[:-1] if host.endswith(".") else host
    # 3. The one IPv4 form we accept is four decimal numbers; ipaddress refuses every other form.
    with contextlib.suppress(ValueError):
        return host, ipaddress.IPv4Address(host)
    # 4. Anything libc or a browser would read as a number (0x7f000001, 2130706433, 0177.0.0.1, 127.1)
    #    is refused, so the address we vet is the address that gets used.
    if _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]) or _is_numeric_for_libc(host):
        raise UnsupportedUrlError(
            f"the {label} URL's host {raw!r} is a non-standard numeric address; "
            "write IPv4 addresses as four decimal numbers (203.0.113.7)"
        )
    if len(host) > 253 or not all(_DNS_LABEL.fullmatch(part) for part in host.split(".")):
        raise UnsupportedUrlError(f"the {label} URL's host {raw!r} is not a valid host name")
    return host, None


def _is_numeric_for_libc(host: str) -> bool:
    """True when getaddrinfo parses ``host`` as a numeric address (no DNS query is made)."""
    try:
        socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError):
        return False
    return True


def _resolve(host: str, port: int, resolver: Resolver, label: str) -> list[IPAddress]:
    try:
        answers = resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise InputUnreachableError(f"the {label} URL's host {host} cannot be resolved ({exc})") from exc
    addresses: list[IPAddress] = []
    for answer in answers:
        try:
            addresses.append(ipaddress.ip_address(answer.split("%", 1)[0]))
        except ValueError as exc:
            raise InputUnreachableError(f"the {label} URL's host {host} resolved to {answer!r}") from exc
    if not addresses:
        raise InputUnreachableError(f"the {label} URL's host {host} has no addresses")
    return addresses


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
    client: httpx.Client, target: VettedUrl, timeouts: httpx.Timeout, label: str
) -> tuple[httpx.Response, IPAddress]:
    """Send the GET to the vetted addresses in turn (pinned: no second DNS lookup), Host/SNI = the name."""
    failure: httpx.TransportError | None = None
    for address in target.addresses:
        connect_to = _unmapped(address)
        literal = f"[{connect_to}]" if connect_to.version == 6 else str(connect_to)
        request = client.build_request(
            "GET",
            f"{target.scheme}://{literal}:{target.port}{target.request_target}",
            # identity: the byte cap counts what lands on disk, and no decompression bomb is inflated.
            headers={"Host": target.host_header, "Accept-Encoding": "identity"},
            timeout=timeouts,
            # httpcore uses sni_hostname for TLS SNI and for certificate hostname verification.
            extensions={"sni_hostname": target.host},
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


def _unmapped(address: IPAddress) -> IPAddress:
    """::ffff:a.b.c.d is reached over IPv4 anyway; connect to a.b.c.d."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


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
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
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
