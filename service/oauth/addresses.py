"""Which network addresses Airlock may fetch a client's metadata document from: public unicast ones only.

A client chooses the URL of its metadata document, so fetching it is a request Airlock makes on a stranger's behalf.
Without this check a client id such as https://10.0.0.5/admin would make Airlock probe its own network (server-side
request forgery). The check is pure; the fetch resolves a name once and connects only to the addresses passed here.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix (RFC 6052): the last 32 bits are IPv4


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one reaches in the end: mapped, 6to4 or NAT64, where a gateway or the host's own
    stack turns it back into IPv4."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _kind(address: IPAddress) -> str | None:
    """What makes an address non-public, in the words a refusal shows; None for a public unicast address."""
    kinds = [
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("shared (carrier-grade NAT)", isinstance(address, ipaddress.IPv4Address) and address in _SHARED),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("reserved", not address.is_global),
    ]
    return next((kind for kind, applies in kinds if applies), None)


def refusal(address: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why Airlock must not connect to `address` ("a private address", ...), or None when it may."""
    kind = _kind(reached(address))
    if kind is None or (kind == "loopback" and allow_loopback):
        return None
    return f"an {kind} address" if kind[0] in "aeiou" else f"a {kind} address"


def reached(address: IPAddress) -> IPAddress:
    """The address a connection to `address` ends at: the embedded IPv4 one for a translated IPv6 address."""
    if isinstance(address, ipaddress.IPv6Address) and (inner := _embedded_ipv4(address)) is not None:
        return inner
    return address
