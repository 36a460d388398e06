"""The WebSocket protocol with a real client: every message and close code of the contract."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import msgspec
import pytest

from app.api.keys import HUB
from app.errors import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_SERVICE_RESTART,
    CLOSE_TOO_MANY,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNAUTHORIZED,
)

from .conftest import Flow, MakeClient, envelope
from .live_client import WS, closed_with, recv, recv_type, subscribed, token_for


def test_close_codes_are_the_contracts() -> None:
    # The tests compare close codes by name: these are the numbers clients see.
    assert CLOSE_MESSAGE_TOO_BIG == 1009
    assert CLOSE_SERVICE_RESTART == 1012
    assert CLOSE_TRY_AGAIN_LATER == 1013
    assert CLOSE_UNAUTHORIZED == 4401
    assert CLOSE_TOO_MANY == 4429


async def test_anonymous_connect_subscribe_snapshot(flow: Flow, client: Any) -> None:
    await flow.award("alice", "q1")
    ws = await client.ws_connect(WS)
    hello = await recv(ws)
    assert hello["type"] == "connected" and "userId" not in hello and hello["clientId"]
    assert hello["timestamp"].endswith("Z")
    await ws.send_json({"type": "subscribe", "channel": "leaderboard"})
    assert await recv(ws) == {"type": "subscribed", "channel": "leaderboard", "board": "global"}
    snapshot = await recv(ws)
    assert snapshot["type"] == "leaderboard_update"
    assert snapshot["data"]["leaderboard"] == [
        {"rank": 1, "userId": "alice", "username": "Alice", "score": 100, "change": "+0"}
    ]
    assert snapshot["data"]["updatedAt"].endswith("Z")
    await ws.close()


async def test_token_in_query_is_checked_first(client: Any) -> None:
    ws = await client.ws_connect(f"{WS}?token={token_for('alice')}")
    assert (await recv(ws))["userId"] == "alice"
    await ws.close()
    for token in ("not-a-jwt", "eyJhbGciOiJIUzI1NiJ9.%C3%A9.x", "%C3%A9.%C3%A9.%C3%A9", "a.b.c%ED%A0%80"):
        bad = await client.ws_connect(f"{WS}?token={token}")
        assert await closed_with(bad) == CLOSE_UNAUTHORIZED, token  # closed before `connected` was sent
    # Two tokens: which user is meant is unknown, even when both are valid.
    for second in (token_for("alice"), token_for("bob")):
        twice = await client.ws_connect(f"{WS}?token={token_for('alice')}&token={second}")
        assert await closed_with(twice) == CLOSE_UNAUTHORIZED


async def test_auth_message(client: Any) -> None:
    ws = await client.ws_connect(WS)
    await recv(ws)
    await ws.send_json({"type": "auth", "token": token_for("bob")})
    assert await recv(ws) == {"type": "authenticated", "userId": "bob"}
    await ws.send_json({"type": "auth", "token": token_for("bob")})
    # The REST codes, as the contract asks of every WebSocket error.
    assert (await recv(ws))["error"] == {
        "code": "VALIDATION_ERROR",
        "message": "This connection is already authenticated",
    }
    await ws.close()
    ws = await client.ws_connect(WS)
    await recv(ws)
    await ws.send_json({"type": "auth", "token": "forged.token.value"})
    assert await closed_with(ws) == CLOSE_UNAUTHORIZED
    ws = await client.ws_connect(WS)
    await recv(ws)
    await ws.send_json({"type": "auth", "token": "eyJhbGciOiJIUzI1NiJ9.é.x"})
    assert await closed_with(ws) == CLOSE_UNAUTHORIZED
    ws = await client.ws_connect(WS)
    await recv(ws)
    await ws.send_json({"type": "auth", "token": ""})  # as `?token=` does: a bad token, not a bad message
    assert await closed_with(ws) == CLOSE_UNAUTHORIZED
    # A lone surrogate is no text at all: the message is refused, the connection stays.
    ws = await client.ws_connect(WS)
    await recv(ws)
    await ws.send_str('{"type": "auth", "token": "a.b.c\\ud800"}')
    assert (await recv(ws))["error"]["code"] == "VALIDATION_ERROR"
    await ws.send_json({"type": "ping"})
    assert (await recv(ws))["type"] == "pong"
    await ws.close()


async def test_ping_unsubscribe_and_errors_keep_connection(client: Any) -> None:
    ws = await subscribed(client)
    await ws.send_json({"type": "ping"})
    pong = await recv(ws)
    assert pong["type"] == "pong" and pong["timestamp"].endswith("Z")
    hostile = (
        "not json",
        "[]",
        '{"type": "dance"}',
        '{"type": "subscribe", "channel": "secret"}',
        '{"no": 1}',
        '{"type": "ping", "x": ' + "[" * 1000 + "]" * 1000 + "}",  # deeper than the stack: fits in 4 KiB
        '{"type": "subscribe", "channel": ' + '{"a":' * 600 + "1" + "}" * 600 + "}",
        "[" * 2000 + "]" * 2000,
        '{"type": "subscribe", "channel": "leader\\ud800board"}',
        '{"type": "subscribe", "channel": "leaderboard\\n"}',
    )
    for bad in hostile:
        await ws.send_str(bad)
        error = await recv(ws)
        assert error["type"] == "error" and error["error"]["code"] == "VALIDATION_ERROR" and error["error"]["message"]
    await ws.send_bytes(b"\x00\x01")
    assert (await recv(ws))["type"] == "error"
    await ws.send_json({"type": "unsubscribe", "channel": "leaderboard"})
    assert await recv(ws) == {"type": "unsubscribed", "channel": "leaderboard", "board": "global"}
    await ws.send_json({"type": "ping"})
    assert (await recv(ws))["type"] == "pong"
    await ws.close()


async def test_an_error_inside_a_message_answers_on_the_socket(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(conn: Any) -> None:
        raise RuntimeError("a bug")

    ws = await client.ws_connect(WS)
    await recv(ws)
    monkeypatch.setattr(client.app[HUB], "subscribe", broken)
    await ws.send_json({"type": "subscribe", "channel": "leaderboard"})
    assert (await recv_type(ws, "error"))["error"] == {"code": "INTERNAL_ERROR", "message": "Internal server error"}
    await ws.send_json({"type": "ping"})  # no HTTP answer was written onto the socket: it still speaks
    assert (await recv(ws))["type"] == "pong"
    await ws.close()


async def test_no_per_client_compression(client: Any) -> None:
    ws = await client.ws_connect(WS, compress=15)  # offers permessage-deflate, as browsers do
    assert "permessage-deflate" not in ws._response.headers.get("Sec-WebSocket-Extensions", "")
    assert ws.compress == 0
    await ws.close()


def _ping_of(size: int) -> str:
    head = '{"type": "ping", "pad": "'
    return head + "x" * (size - len(head) - 2) + '"}'


@pytest.mark.parametrize("size", [4097, 5000])
async def test_message_over_4k_closes_1009(client: Any, size: int) -> None:
    ws = await client.ws_connect(WS)
    await recv(ws)
    await ws.send_str(_ping_of(size))
    assert await closed_with(ws) == CLOSE_MESSAGE_TOO_BIG


async def test_a_message_of_exactly_4k_is_read(client: Any) -> None:
    ws = await client.ws_connect(WS)
    await recv(ws)
    await ws.send_str(_ping_of(4096))
    assert (await recv(ws))["type"] == "pong"
    await ws.close()


@pytest.mark.parametrize("via", ["query", "auth"])
async def test_per_user_connection_limit(client: Any, via: str) -> None:
    sockets = []
    for _ in range(5):
        ws = await client.ws_connect(f"{WS}?token={token_for('alice')}")
        assert (await recv(ws))["type"] == "connected"
        sockets.append(ws)
    if via == "query":
        extra = await client.ws_connect(f"{WS}?token={token_for('alice')}")
    else:
        extra = await client.ws_connect(WS)
        await recv(extra)
        await extra.send_json({"type": "auth", "token": token_for("alice")})
    assert await closed_with(extra) == CLOSE_TOO_MANY
    other = await client.ws_connect(f"{WS}?token={token_for('bob')}")  # other users are not affected
    assert (await recv(other))["userId"] == "bob"
    await sockets.pop().close()
    await asyncio.sleep(0.05)
    again = await client.ws_connect(f"{WS}?token={token_for('alice')}")
    assert (await recv(again))["type"] == "connected"
    for ws in (*sockets, other, again):
        await ws.close()


async def test_origin_check(make_client: MakeClient) -> None:
    client = await make_client()
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(WS, headers={"Origin": "https://evil.example"})
    assert info.value.status == 403
    resp = await client.get(WS, headers={"Origin": "https://evil.example"})
    assert (await envelope(resp))["error"]["code"] == "FORBIDDEN"
    host = f"http://{client.host}:{client.port}"
    ws = await client.ws_connect(WS, headers={"Origin": host})
    assert (await recv(ws))["type"] == "connected"
    await ws.close()
    listed = await make_client(websocket={"allowed_origins": ["https://game.example"]})
    ws = await listed.ws_connect(WS, headers={"Origin": "https://game.example"})
    assert (await recv(ws))["type"] == "connected"
    await ws.close()


@pytest.mark.parametrize("origin", [b"\xff\xfe", b"https://ev\xc3il.example"], ids=["not UTF-8", "broken UTF-8"])
async def test_an_origin_that_is_not_utf8_is_refused_in_the_envelope(make_client: MakeClient, origin: bytes) -> None:
    """The refusal names the origin; bytes that are not UTF-8 are shown replaced, never a 500."""
    client = await make_client()
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"GET /ws/scoreboard HTTP/1.1\r\nHost: x\r\nConnection: close\r\nOrigin: " + origin + b"\r\n\r\n")
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403"), head
    error = msgspec.json.decode(body)["error"]
    assert error["code"] == "FORBIDDEN" and "\ufffd" in error["details"]["origin"]


async def test_anonymous_disabled(make_client: MakeClient) -> None:
    client = await make_client(websocket={"allow_anonymous": False})
    ws = await client.ws_connect(WS)
    await recv(ws)
    await ws.send_json({"type": "subscribe", "channel": "leaderboard"})
    assert await closed_with(ws) == CLOSE_UNAUTHORIZED
    ws = await client.ws_connect(WS)
    await recv(ws)
    await ws.send_json({"type": "auth", "token": token_for("alice")})
    assert (await recv(ws))["type"] == "authenticated"
    await ws.send_json({"type": "subscribe", "channel": "leaderboard"})
    assert (await recv(ws))["type"] == "subscribed"
    await ws.close()
