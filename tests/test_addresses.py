"""Client addresses: every X-Forwarded-For line counts, IPv6 is limited per /64, hostile values never fail."""

from __future__ import annotations

import ipaddress

import pytest
from multidict import CIMultiDict

from app.addresses import client_ip, forwarded_https, limit_key, parse_networks

from .conftest import MakeClient, envelope

TRUSTED = parse_networks(["127.0.0.1", "10.0.0.0/8"])
TOP = "/api/v1/scoreboard/top"


def forwarded(*lines: str) -> CIMultiDict[str]:
    """One X-Forwarded-For header line per argument, in order."""
    return CIMultiDict(("X-Forwarded-For", line) for line in lines)


def test_every_header_line_counts_in_order() -> None:
    # The proxy appends its own line after the client's: the client's line cannot pick the address.
    for made_up in ("203.0.113.1", "203.0.113.2, 203.0.113.3", "10.0.0.5"):
        assert client_ip("127.0.0.1", [made_up, "198.51.100.7"], TRUSTED) == "198.51.100.7"
    assert client_ip("127.0.0.1", ["198.51.100.7", "10.0.0.9"], TRUSTED) == "198.51.100.7"  # past a trusted hop
    assert client_ip("127.0.0.1", ["10.0.0.2", "10.0.0.3"], TRUSTED) == "10.0.0.2"  # all trusted: the farthest
    assert client_ip("198.51.100.9", ["203.0.113.1"], TRUSTED) == "198.51.100.9"  # untrusted peer: ignored
    assert client_ip("127.0.0.1", [], TRUSTED) == "127.0.0.1"
    assert client_ip(None, ["203.0.113.1"], TRUSTED) == "unknown"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["garbage"], "127.0.0.1"),  # not an address: the request counts as the proxy's
        (["203.0.113.1, garbage"], "127.0.0.1"),
        (["garbage, 10.0.0.4"], "10.0.0.4"),  # the nearest trusted hop that wrote it
        (["203.0.113.1:4711"], "127.0.0.1"),
        (["fe80::1%eth0"], "fe80::1"),  # a zone id names an interface of the proxy, not a client
        (["fe80::1%"], "127.0.0.1"),
        (["::ffff:203.0.113.8"], "203.0.113.8"),
        (["::ffff:10.0.0.1"], "10.0.0.1"),  # mapped into a trusted range: still trusted, all trusted
        ([",,, ,"], "127.0.0.1"),
        (["", " "], "127.0.0.1"),
        (["\x00\x7f", "é"], "127.0.0.1"),
        (["x" * 8000], "127.0.0.1"),
        (["203.0.113.1"] * 500 + ["198.51.100.1"], "198.51.100.1"),
        ([", ".join(["10.0.0.1"] * 2000)], "10.0.0.1"),
    ],
)
def test_hostile_forwarded_for_values(lines: list[str], expected: str) -> None:
    assert client_ip("127.0.0.1", lines, TRUSTED) == expected


@pytest.mark.parametrize(
    ("peer", "lines", "https"),
    [
        ("10.0.0.1", ["https"], True),
        ("10.0.0.1", ["HTTPS "], True),
        ("10.0.0.1", ["http"], False),
        ("10.0.0.1", ["http, https"], True),  # the nearest proxy's value is the last
        ("10.0.0.1", ["https", "http"], False),  # a client's own line comes first
        ("10.0.0.1", [], False),
        ("10.0.0.1", ["https\u200b"], False),
        ("203.0.113.9", ["https"], False),  # not a trusted proxy: not believed
        (None, ["https"], False),
    ],
)
def test_only_a_trusted_proxy_says_https(peer: str | None, lines: list[str], https: bool) -> None:
    assert forwarded_https(peer, lines, parse_networks(["10.0.0.0/8"])) is https


def test_a_dual_stack_peer_is_recognised_as_a_trusted_proxy() -> None:
    assert client_ip("::ffff:127.0.0.1", ["203.0.113.1"], TRUSTED) == "203.0.113.1"


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("::ffff:203.0.113.5", "203.0.113.5"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2:0:0:0:7", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::1", "::/64"),
        ("unknown", "unknown"),
    ],
)
def test_limit_key(address: str, key: str) -> None:
    assert limit_key(address) == key


def test_neighbouring_ipv6_networks_are_different_keys() -> None:
    assert limit_key("2001:db8:1:2::1") != limit_key("2001:db8:1:3::1")
    assert limit_key("2001:db8::1") != limit_key("2001:db9::1")
    ipaddress.ip_network(limit_key("2001:db8:1:2::1"))  # a real network, as it reads in logs and keys


async def test_an_added_header_line_does_not_rotate_the_limit(make_client: MakeClient) -> None:
    client = await make_client(limits={"ip_requests_per_minute": 1}, server={"trusted_proxies": ["127.0.0.1"]})
    assert (await client.get(TOP, headers=forwarded("203.0.113.1", "198.51.100.7"))).status == 200
    resp = await client.get(TOP, headers=forwarded("203.0.113.2", "198.51.100.7"))
    assert resp.status == 429 and (await envelope(resp))["error"]["code"] == "RATE_LIMITED"
    assert (await client.get(TOP, headers=forwarded("198.51.100.8"))).status == 200  # another client


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9"),  # the same /64
        ("::ffff:203.0.113.5", "203.0.113.5"),  # IPv4-mapped: the same IPv4 client
        ("fe80::1%eth0", "fe80::2%eth1"),
    ],
)
async def test_one_limit_per_ipv6_network(make_client: MakeClient, first: str, second: str) -> None:
    client = await make_client(limits={"ip_requests_per_minute": 1}, server={"trusted_proxies": ["127.0.0.1"]})
    assert (await client.get(TOP, headers=forwarded(first))).status == 200
    resp = await client.get(TOP, headers=forwarded(second))
    assert resp.status == 429 and (await envelope(resp))["error"]["code"] == "RATE_LIMITED"
    assert (await client.get(TOP, headers=forwarded("2001:db8:1:3::1"))).status == 200  # the next /64


@pytest.mark.parametrize("trusted", [[], ["127.0.0.1"]])
async def test_no_forwarded_for_value_fails_a_request(make_client: MakeClient, trusted: list[str]) -> None:
    client = await make_client(server={"trusted_proxies": trusted})
    for headers in (
        forwarded("garbage"),
        forwarded("fe80::1%eth0", "[::1]:80", "1.2.3.4:5"),
        forwarded(*(f"203.0.113.{i}" for i in range(100))),
        forwarded(", ".join("x" * 50 for _ in range(100))),
        forwarded("%", "::ffff:", "::ffff:999.1.1.1", "1.2.3.4%eth0"),
    ):
        for path in (TOP, "/healthz", "/nowhere"):
            resp = await client.get(path, headers=headers)
            assert resp.status in (200, 404), (path, headers, await resp.text())
            await envelope(resp)
