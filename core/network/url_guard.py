"""The URL guard for user-supplied URLs (service-practices §7): http/https only, the host parsed the way a
browser and libc would read it, and every resolved address vetted against the private ranges and the
allow-list. Used by the input downloader and the webhook sender; imports nothing heavy.
"""

import contextlib
import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from core.contract.networks import IPAddress, IPNetwork
from core.errors import ForbiddenAddressError, InputUnreachableError, UnsupportedUrlError

__all__ = [
    "IPAddress", "IPNetwork", "Resolver", "VettedUrl",
    "address_problem", "default_resolver", "is_allowed", "unmapped", "vet_url",
]  # fmt: skip

Resolver = Callable[[str, int], list[str]]

_SCHEMES = {"http": 80, "https": 443}
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


def unmapped(address: IPAddress) -> IPAddress:
    """::ffff:a.b.c.d is reached over IPv4 anyway; connect to a.b.c.d."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
