"""WebSocket admission: a per-IP connection cap, a per-IP handshake rate and a per-process ceiling,
all answered before the upgrade, and every place given back however a connection ends."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import jwt
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from app.api.keys import ADMISSION, HUB
from app.errors import CLOSE_TOO_MANY, CLOSE_UNAUTHORIZED

from .conftest import JWT_SECRET, MakeClient, envelope

WS = "/ws/scoreboard"
UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}
PROXIED = {"server": {"trusted_proxies": ["127.0.0.1"]}}
Client = TestClient[web.Request, web.Application]
CLOSED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)


def token_for(user: str) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time() + 3600)}, JWT_SECRET, algorithm="HS256")


async def recv(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message: dict[str, Any] = await ws.receive_json(timeout=3)
    return message


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """The close code, after any messages sent before it."""
    while (await ws.receive(timeout=3)).type == aiohttp.WSMsgType.TEXT:
        pass
    return ws.close_code


def sent_by(address: str) -> dict[str, str]:
    """Headers of a request that a trusted proxy passed on for `address`."""
    return {"X-Forwarded-For": address}


async def connected(
    client: Client, path: str = WS, headers: dict[str, str] | None = None
) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect(path, headers=headers)
    assert (await recv(ws))["type"] == "connected"
    return ws


async def refused(client: Client, status: int, code: str, headers: dict[str, str] | None = None) -> int:
    """A handshake answered before the upgrade: the status, the envelope and its Retry-After."""
    resp = await client.get(WS, headers={**UPGRADE, **(headers or {})})
    body = await envelope(resp)
    assert resp.status == status and body["error"]["code"] == code, body
    retry_after = resp.headers["Retry-After"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    return int(retry_after)


async def settled(client: Client, open_connections: int) -> None:
    """Wait until the server let go of the connections that ended, their slots included."""
    admission = client.app[ADMISSION]
    for _ in range(500):
        if admission.open == open_connections:
            break
        await asyncio.sleep(0.01)
    assert admission.open == open_connections
    await admission.released()


async def test_connections_per_ip_are_capped_before_the_upgrade(make_client: MakeClient) -> None:
    client = await make_client(limits={"ws_connections_per_ip": 3}, **PROXIED)
    # Anonymous and authenticated connections count alike, however they authenticate.
    anonymous = await connected(client)
    by_query = await connected(client, f"{WS}?token={token_for('alice')}")
    by_message = await connected(client)
    await by_message.send_json({"type": "auth", "token": token_for("bob")})
    assert (await recv(by_message))["type"] == "authenticated"
    await refused(client, 429, "RATE_LIMITED")
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(f"{WS}?token={token_for('carol')}")
    assert info.value.status == 429
    assert len(client.app[HUB].registry.connections) == 3  # nothing was upgraded
    other = await connected(client, headers=sent_by("203.0.113.9"))  # another client is not affected
    await anonymous.close()
    await settled(client, 3)
    again = await connected(client)
    await refused(client, 429, "RATE_LIMITED")
    for ws in (by_query, by_message, other, again):
        await ws.close()


async def test_ipv6_clients_share_the_cap_of_their_64(make_client: MakeClient) -> None:
    client = await make_client(limits={"ws_connections_per_ip": 1}, **PROXIED)
    first = await connected(client, headers=sent_by("2001:db8:1:2::1"))
    await refused(client, 429, "RATE_LIMITED", sent_by("2001:db8:1:2:ffff::2"))
    mapped = await connected(client, headers=sent_by("::ffff:203.0.113.4"))
    await refused(client, 429, "RATE_LIMITED", sent_by("203.0.113.4"))
    for ws in (first, mapped):
        await ws.close()


async def _raw_upgrade_then_vanish(client: Client) -> None:
    """A client that upgrades and goes away without a close frame."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    lines = "".join(f"{k}: {v}\r\n" for k, v in UPGRADE.items())
    writer.write(f"GET {WS} HTTP/1.1\r\nHost: {client.host}:{client.port}\r\n{lines}\r\n".encode())
    assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
    writer.transport.abort()


async def test_every_way_a_connection_ends_gives_its_place_back(make_client: MakeClient) -> None:
    client = await make_client(
        limits={"ws_connections_per_ip": 1, "ws_connections_per_user": 1, "ws_connections_per_process": 2},
        websocket={"heartbeat_seconds": 0.2},
        **PROXIED,
    )
    admission = client.app[ADMISSION]

    async def place_is_free(address: str = "127.0.0.1") -> None:
        await settled(client, 0)
        ws = await connected(client, headers=sent_by(address))
        await ws.close()
        await settled(client, 0)

    ws = await connected(client)  # the client closes
    await ws.close()
    await place_is_free()
    bad = await client.ws_connect(f"{WS}?token=not-a-jwt")  # a bad token in the URL: 4401
    assert await closed_with(bad) == CLOSE_UNAUTHORIZED
    await place_is_free()
    ws = await connected(client)  # a bad token in an auth message: 4401
    await ws.send_json({"type": "auth", "token": "forged.token.value"})
    assert await closed_with(ws) == CLOSE_UNAUTHORIZED
    await place_is_free()
    alice = await connected(client, f"{WS}?token={token_for('alice')}")  # over the per-user limit: 4429
    extra = await client.ws_connect(f"{WS}?token={token_for('alice')}", headers=sent_by("203.0.113.7"))
    assert await closed_with(extra) == CLOSE_TOO_MANY
    await alice.close()
    await place_is_free("203.0.113.7")
    resp = await client.get(WS)  # no upgrade headers: refused by the upgrade itself
    assert resp.status == 400 and (await envelope(resp))["error"]["code"] == "VALIDATION_ERROR"
    await place_is_free()
    await _raw_upgrade_then_vanish(client)  # gone without a close frame
    await place_is_free()
    silent = await client.ws_connect(WS, autoping=False)  # cut by the heartbeat: never answers a ping
    while not silent.closed:
        await silent.receive(timeout=3)
    await place_is_free()
    assert admission.open == 0


async def test_a_connection_closed_as_one_too_many_answers_nothing_sent_after_its_auth(
    make_client: MakeClient,
) -> None:
    # A client sends `auth` and its subscriptions at once: the ones behind an `auth` that closes
    # the connection (4429) get no `subscribed`, which a client would take as a socket that serves.
    client = await make_client(limits={"ws_connections_per_user": 1})
    first = await connected(client, f"{WS}?token={token_for('alice')}")
    extra = await connected(client)
    await extra.send_json({"type": "auth", "token": token_for("alice")})
    await extra.send_json({"type": "subscribe", "channel": "leaderboard"})
    await extra.send_json({"type": "subscribe", "channel": "around"})
    await extra.send_json({"type": "ping"})
    heard = []
    while (msg := await extra.receive(timeout=3)).type == aiohttp.WSMsgType.TEXT:
        heard.append(msg.json()["type"])
    assert (msg.type, extra.close_code, heard) == (aiohttp.WSMsgType.CLOSE, CLOSE_TOO_MANY, [])
    await first.close()


async def test_handshakes_per_ip_are_rate_limited(make_client: MakeClient) -> None:
    client = await make_client(limits={"ws_handshakes_per_ip_per_minute": 3}, **PROXIED)
    for path in (WS, f"{WS}?token={token_for('alice')}", f"{WS}?token=not-a-jwt"):  # every handshake counts
        ws = await client.ws_connect(path)
        await ws.close()
    assert await refused(client, 429, "RATE_LIMITED") >= 1
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(WS)
    assert info.value.status == 429
    ws = await connected(client, headers=sent_by("203.0.113.5"))  # another client is not affected
    await ws.close()
    for address in ("2001:db8::1", "2001:db8::2", "2001:db8::3"):  # one /64, one budget
        ws = await connected(client, headers=sent_by(address))
        await ws.close()
    await refused(client, 429, "RATE_LIMITED", sent_by("2001:db8::4"))


async def test_process_ceiling_answers_503_before_the_upgrade(make_client: MakeClient) -> None:
    client = await make_client(limits={"ws_connections_per_process": 2}, **PROXIED)
    first = await connected(client)
    second = await connected(client, headers=sent_by("203.0.113.1"))
    await refused(client, 503, "SERVICE_UNAVAILABLE", sent_by("203.0.113.2"))
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(WS, headers=sent_by("203.0.113.3"))
    assert info.value.status == 503
    await first.close()
    await settled(client, 1)
    third = await connected(client, headers=sent_by("203.0.113.2"))
    for ws in (second, third):
        await ws.close()


@pytest.mark.parametrize("storage", ["redis", "postgres"], indirect=True)
async def test_the_cap_per_ip_counts_across_processes(make_client: MakeClient) -> None:
    first = await make_client(limits={"ws_connections_per_ip": 2})
    second = await make_client(limits={"ws_connections_per_ip": 2})  # another process, same Redis
    a = await connected(first)
    b = await connected(second)
    await refused(first, 429, "RATE_LIMITED")
    await refused(second, 429, "RATE_LIMITED")
    await b.close()
    await settled(second, 0)
    c = await connected(first)
    for ws in (a, c):
        await ws.close()


async def test_hostile_forwarded_for_on_the_websocket(make_client: MakeClient) -> None:
    client = await make_client(limits={"ws_connections_per_ip": 2}, **PROXIED)
    hostile = [
        ["garbage"],  # not an address: counts as the proxy's (127.0.0.1)
        ["fe80::1%eth0"],
        ["[::1]:80", "1.2.3.4:5", "%"],  # the proxy's again
        [f"203.0.113.{i}" for i in range(60)],
        [", ".join("x" * 40 for _ in range(100))],  # the proxy's, over its cap
    ]
    opened, statuses = [], []
    for lines in hostile:
        try:
            opened.append(await client.ws_connect(WS, headers=CIMultiDict(("X-Forwarded-For", v) for v in lines)))
            statuses.append(101)
        except aiohttp.WSServerHandshakeError as exc:
            statuses.append(exc.status)
    assert statuses == [101, 101, 101, 101, 429]
    for ws in opened:
        await ws.close()
    await settled(client, 0)


@pytest.mark.parametrize("storage", ["redis"], indirect=True)
async def test_shutdown_gives_every_place_back_before_redis_closes(
    make_client: MakeClient, storage: dict[str, Any]
) -> None:
    client = await make_client()
    sockets = [await connected(client), await connected(client, f"{WS}?token={token_for('alice')}")]
    await client.close()  # the server shuts down with both connections open
    for ws in sockets:
        assert ws.closed or (await ws.receive(timeout=3)).type in CLOSED
    redis = aioredis.Redis.from_url(storage["redis_url"])
    try:
        assert await redis.zcard(f"{storage['redis_prefix']}:ws:ip:127.0.0.1") == 0
        assert await redis.zcard(f"{storage['redis_prefix']}:ws:user:alice") == 0
    finally:
        await redis.aclose()
