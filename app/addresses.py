"""Client addresses: who sent a request (behind trusted proxies), and the key per-IP limits count it under."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "unknown"  # a peer without an IP address (a Unix socket): all such clients share one key
IPV6_LIMIT_PREFIX = 64  # one subscriber gets a whole /64: a limit per /128 is a limit on nobody


def parse_networks(entries: Sequence[str]) -> tuple[IpNetwork, ...]:
    """Trusted proxy addresses or CIDR ranges (already validated by the config)."""
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def parse_ip(text: str) -> IpAddress | None:
    """An IP address as a socket or a proxy writes it, or None. The zone id of a link-local IPv6
    address is dropped and an IPv4-mapped IPv6 address is its IPv4 address: one host, one address."""
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.scope_id is not None:
            return ipaddress.IPv6Address(int(ip))
    return ip


def client_ip(peer: str | None, forwarded_for: Sequence[str], trusted: tuple[IpNetwork, ...]) -> str:
    """The client's address: the peer, or behind trusted proxies the nearest untrusted hop of
    X-Forwarded-For, every line of the header in order (`forwarded_for`: the lines)."""
    peer = peer or UNKNOWN
    if not trusted or not forwarded_for or not _is_trusted(parse_ip(peer), trusted):
        return peer
    # Lines are joined as one list (RFC 9110, 5.3): a client that adds a line of its own before
    # the proxy's still ends up left of the address the proxy appended.
    nearest = peer
    for hop in reversed(",".join(forwarded_for).split(",")):
        if not hop.strip():
            continue
        ip = parse_ip(hop)
        if ip is None:
            # A trusted proxy writes addresses: anything else came from beyond it, so who is
            # there is unknown and the request counts as the proxy's (nothing a client can rotate).
            return nearest
        if not _is_trusted(ip, trusted):
            return str(ip)
        nearest = str(ip)
    return nearest


def forwarded_https(peer: str | None, forwarded_proto: Sequence[str], trusted: tuple[IpNetwork, ...]) -> bool:
    """Whether a trusted proxy in front says the client came over https: the nearest value of its
    X-Forwarded-Proto (`forwarded_proto`: the header's lines). Anyone else's header is not believed."""
    if not forwarded_proto or not _is_trusted(parse_ip(peer or ""), trusted):
        return False
    return ",".join(forwarded_proto).rsplit(",", 1)[-1].strip().lower() == "https"


def _is_trusted(ip: IpAddress | None, trusted: tuple[IpNetwork, ...]) -> bool:
    return ip is not None and any(ip in net for net in trusted)


@functools.lru_cache(maxsize=4096)  # the same few clients ask again and again
def limit_key(address: str) -> str:
    """The key every per-IP limit counts a client address under: its IPv4 address, or its IPv6 /64."""
    ip = parse_ip(address)
    if ip is None:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, IPV6_LIMIT_PREFIX), strict=False))
    return str(ip)
