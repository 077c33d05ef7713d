"""IP address and network types, and the format of the ``fetch_allowed_networks`` allow-list.

Plain ``ipaddress`` only: settings parse the allow-list with it, the URL guard (core.network) checks with it.
"""

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allowed_networks(value: str) -> list[IPNetwork]:
    """Parse the comma-separated ``fetch_allowed_networks`` setting ("127.0.0.0/8, 10.1.0.0/16").

    Raises:
        ValueError: an item is not a CIDR network (host bits set, or not an address at all).
    """
    networks: list[IPNetwork] = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=True))
        except ValueError as exc:
            raise ValueError(
                f"fetch_allowed_networks: {item!r} is not a CIDR network ({exc}); "
                "write networks like 10.0.0.0/8 or fd00::/8, separated by commas"
            ) from exc
    return networks
