"""URL guard for input fetching: schemes, host forms, address classes and the allow-list.

Every name is resolved by an injected resolver; no test here opens a connection (the network guard
would fail it if one tried).
"""

import ipaddress
import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.contract.networks import parse_allowed_networks
from core.errors import (
    ForbiddenAddressError,
    InputFetchError,
    InputUnreachableError,
    UnsupportedUrlError,
)
from core.network.download import fetch_to_file
from core.network.url_guard import address_problem, is_allowed, unmapped, vet_url
from tests.support.network import forbid_non_loopback_traffic

FAKE_DNS = {
    "media.example": ["8.8.8.8"],
    "dual.example": ["8.8.8.8", "2606:4700:4700::1111"],
    "internal.example": ["10.0.0.5"],
    "metadata.example": ["169.254.169.254"],
    "split.example": ["8.8.8.8", "10.0.0.5"],
    "split6.example": ["2606:4700:4700::1111", "fd00::5"],
    "mapped.example": ["::ffff:10.0.0.5"],
    "nowhere.example": [],
}


@pytest.fixture(autouse=True)
def _no_traffic(monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_non_loopback_traffic(monkeypatch)


def fake_resolver(host: str, port: int) -> list[str]:
    if host not in FAKE_DNS:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return FAKE_DNS[host]


def failing_resolver(host: str, port: int) -> list[str]:
    raise AssertionError(f"the resolver must not be asked about {host!r}")


def vet(url: str, allowed: str = "", resolver: Callable[[str, int], list[str]] = fake_resolver):
    return vet_url(url, allowed_networks=parse_allowed_networks(allowed), resolver=resolver, label="image")


def test_error_codes_are_stable() -> None:
    assert UnsupportedUrlError.code == "unsupported_url"
    assert ForbiddenAddressError.code == "forbidden_address"
    assert InputUnreachableError.code == "input_unreachable"
    assert InputFetchError.code == "input_unreachable"
    assert issubclass(ForbiddenAddressError, InputFetchError)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "uses file:"),
        ("ftp://media.example/a.png", "uses ftp:"),
        ("data:image/png;base64,iVBORw0KGgo=", "uses data:"),
        ("gopher://media.example:70/_GET", "uses gopher:"),
        ("javascript:alert(1)", "uses javascript:"),
        ("//media.example/a.png", "uses no scheme"),
        ("media.example/a.png", "uses no scheme"),
        ("http:///a.png", "has no host"),
        ("http://user:secret@media.example/a.png", "contains a user name or password"),
        ("http://user@media.example/a.png", "contains a user name or password"),
        ("http://media.example\\@internal.example/a.png", "backslashes"),
        ("http://media.example/a b.png", "spaces"),
        ("http://media.example/a.png\n", "control characters"),
        ("http://media.example:99999/a.png", "has an invalid port"),
        ("http://media.example:0/a.png", "has port 0"),
        ("http://[fe80::1%25eth0]/a.png", "has an IPv6 zone id"),
        ("http://[not-ipv6]/a.png", "cannot be parsed"),
        ("http://media_example/a.png", "is not a valid host name"),
        ("http://-media.example/a.png", "is not a valid host name"),
        ("http://%6d%65dia.example/a.png", "is not a valid host name"),
    ],
)
def test_vet_url_refuses_unsupported_forms(url: str, reason: str) -> None:
    with pytest.raises(UnsupportedUrlError, match=re.escape(reason)):  # the message says what to fix
        vet(url, resolver=failing_resolver)


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.0.0.1", "017700000001", "127.0.1", "10.0.0.05"],
)
def test_vet_url_refuses_non_standard_numeric_hosts_without_resolving(host: str) -> None:
    with pytest.raises(UnsupportedUrlError, match="four decimal numbers"):
        vet(f"http://{host}/a.png", resolver=failing_resolver)


def test_vet_url_normalises_fullwidth_digits_before_checking() -> None:
    # IDNA maps fullwidth digits to ASCII, so this is 127.0.0.1 and must be judged as such.
    with pytest.raises(ForbiddenAddressError, match="loopback"):
        vet("http://１２７.０.０.１/a.png", resolver=failing_resolver)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.255.0.9", "a loopback address"),
        ("10.0.0.5", "a private address"),
        ("172.16.3.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("169.254.169.254", "the cloud metadata address"),
        ("169.254.1.1", "a link-local address"),
        ("100.64.0.1", "a shared carrier-grade NAT address"),
        ("100.127.255.254", "a shared carrier-grade NAT address"),
        ("224.0.0.1", "a multicast address"),
        ("239.255.255.250", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("255.255.255.255", "a private address"),
        ("240.0.0.1", "a private address"),
        ("::1", "a loopback address"),
        ("::", "an unspecified address"),
        ("fe80::1", "a link-local address"),
        ("fc00::1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("fd00:ec2::254", "the cloud metadata address"),
        ("ff02::1", "a multicast address"),
        ("2001:db8::1", "a private address"),
        ("64:ff9b:1::808:808", "a local-use NAT64 address"),
        ("::ffff:10.0.0.1", "a private address (10.0.0.1 inside an IPv6 address)"),
        ("::ffff:127.0.0.1", "a loopback address (127.0.0.1 inside an IPv6 address)"),
        ("::ffff:169.254.169.254", "the cloud metadata address (169.254.169.254 inside an IPv6 address)"),
        ("64:ff9b::a00:5", "a private address (10.0.0.5 inside an IPv6 address)"),
        ("2002:a00:5::1", "a private address (10.0.0.5 inside an IPv6 address)"),
    ],
)
def test_address_problem_names_each_non_public_class(address: str, reason: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"]
)
def test_address_problem_accepts_public_addresses(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "10.0.0.5", "169.254.169.254", "[::1]", "[::ffff:10.0.0.1]", "[fd00:ec2::254]", "[64:ff9b::7f00:1]"],
)
def test_vet_url_refuses_forbidden_ip_literals_without_resolving(host: str) -> None:
    with pytest.raises(ForbiddenAddressError, match="inputs must be publicly reachable"):
        vet(f"http://{host}:8080/a.png", resolver=failing_resolver)


def test_forbidden_message_names_host_address_and_class() -> None:
    with pytest.raises(ForbiddenAddressError) as caught:
        vet("https://internal.example/a.png")
    assert caught.value.message == (
        "the image URL's host internal.example resolves to 10.0.0.5, a private address; "
        "inputs must be publicly reachable"
    )
    with pytest.raises(ForbiddenAddressError, match=re.escape("169.254.169.254, the cloud metadata address")):
        vet("http://metadata.example/latest/meta-data/")


@pytest.mark.parametrize("host", ["split.example", "split6.example", "mapped.example"])
def test_vet_url_refuses_a_host_when_any_address_is_not_public(host: str) -> None:
    with pytest.raises(ForbiddenAddressError, match=rf"the image URL's host {host} resolves to .*; inputs must be"):
        vet(f"https://{host}/a.png")


def test_vet_url_keeps_every_vetted_address_and_the_request_parts() -> None:
    target = vet("https://DUAL.example.:8443/v/a.png?sig=abc#frag")
    assert target.host == "dual.example"
    assert target.port == 8443
    assert target.host_header == "dual.example:8443"
    assert target.request_target == "/v/a.png?sig=abc"
    assert [str(a) for a in target.addresses] == ["8.8.8.8", "2606:4700:4700::1111"]
    assert vet("http://media.example").request_target == "/"
    assert vet("http://media.example:80/x").host_header == "media.example"
    assert vet("http://[2606:4700:4700::1111]/x").host_header == "[2606:4700:4700::1111]"


def test_vet_url_reports_dns_failure_and_empty_answers_as_unreachable() -> None:
    with pytest.raises(InputUnreachableError, match="cannot be resolved"):
        vet("https://unknown.example/a.png")
    with pytest.raises(InputUnreachableError, match="has no addresses"):
        vet("https://nowhere.example/a.png")


def test_allow_list_opens_exactly_its_range() -> None:
    allowed = parse_allowed_networks("10.0.0.0/24")
    assert is_allowed(ipaddress.ip_address("10.0.0.5"), allowed)
    assert is_allowed(ipaddress.ip_address("::ffff:10.0.0.5"), allowed)
    assert not is_allowed(ipaddress.ip_address("10.0.1.5"), allowed)
    assert not is_allowed(ipaddress.ip_address("127.0.0.1"), allowed)
    assert not is_allowed(ipaddress.ip_address("fd00::5"), allowed)
    assert is_allowed(ipaddress.ip_address("8.8.8.8"), [])
    assert vet("http://internal.example/a.png", allowed="10.0.0.0/24").host == "internal.example"
    with pytest.raises(ForbiddenAddressError, match=re.escape("resolves to 10.0.0.5, a private address")):
        vet("http://internal.example/a.png", allowed="10.0.1.0/24")
    with pytest.raises(ForbiddenAddressError, match=re.escape("169.254.169.254, the cloud metadata address")):
        vet("http://metadata.example/a.png", allowed="10.0.0.0/8")


def test_parse_allowed_networks_reads_the_setting() -> None:
    assert parse_allowed_networks("") == []
    assert parse_allowed_networks(" 127.0.0.0/8 , ::1/128 ,") == [
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    ]
    with pytest.raises(ValueError, match=re.escape("'10.0.0.1/8' is not a CIDR network")):
        parse_allowed_networks("10.0.0.1/8")
    with pytest.raises(ValueError, match="'intranet'"):
        parse_allowed_networks("127.0.0.0/8,intranet")


private_v4 = st.one_of(
    *(
        st.integers(int(net.network_address), int(net.broadcast_address)).map(ipaddress.IPv4Address)
        for net in map(
            ipaddress.ip_network,
            ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10"],
        )
    )
)


@given(private_v4)
def test_every_private_ipv4_is_refused_in_every_spelling(address: ipaddress.IPv4Address) -> None:
    for spelled in (address, ipaddress.IPv6Address(f"::ffff:{address}"), ipaddress.IPv6Address(f"64:ff9b::{address}")):
        assert address_problem(spelled) is not None
        assert not is_allowed(spelled, [])


def test_fetch_to_file_refuses_before_connecting(tmp_path: Path) -> None:
    # The network guard raises if anything connects; the address check must come first.
    dest = tmp_path / "in.png"
    with pytest.raises(ForbiddenAddressError, match=re.escape("internal.example resolves to 10.0.0.5")):
        fetch_to_file(
            "http://internal.example/a.png",
            dest,
            max_bytes=1000,
            timeout_s=5,
            allowed_networks=[],
            resolver=fake_resolver,
        )
    assert list(tmp_path.iterdir()) == []


def test_the_network_guard_itself_stops_traffic_off_loopback() -> None:
    # The safety net for every test here: it raises before any packet leaves.
    with socket.socket() as sock, pytest.raises(AssertionError, match=re.escape("10.0.0.5, which is not loopback")):
        sock.connect(("10.0.0.5", 80))
    with pytest.raises(AssertionError, match=re.escape("connect to 127.0.0.1")):
        socket.getaddrinfo("media.example", 80)
    with pytest.raises(AssertionError):
        socket.create_connection(("8.8.8.8", 53), timeout=1)


def test_the_network_guard_lets_a_server_bind_all_interfaces_but_not_connect_there() -> None:
    # A worker's metrics server resolves 0.0.0.0 with AI_PASSIVE to bind it; nothing is sent.
    assert socket.getaddrinfo("0.0.0.0", 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    with pytest.raises(AssertionError, match=re.escape("0.0.0.0, which is not loopback")):
        socket.getaddrinfo("0.0.0.0", 80)
    with socket.socket() as sock, pytest.raises(AssertionError, match=re.escape("0.0.0.0, which is not loopback")):
        sock.connect(("0.0.0.0", 80))


def test_unmapped_connects_to_the_ipv4_address_inside_a_mapped_one() -> None:
    assert unmapped(ipaddress.ip_address("::ffff:10.0.0.5")) == ipaddress.ip_address("10.0.0.5")
    assert unmapped(ipaddress.ip_address("2606:4700::1111")) == ipaddress.ip_address("2606:4700::1111")
    assert unmapped(ipaddress.ip_address("8.8.8.8")) == ipaddress.ip_address("8.8.8.8")
