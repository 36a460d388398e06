"""A board's channel as Server-Sent Events (`GET /api/v1/boards/{board}/stream`), in every storage
set-up: the snapshot first, every change after, `Last-Event-ID`, refusals before the stream starts,
the drain, and a client that stops reading."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from app.api.keys import HUB
from app.live import connections as connections_module

from ..conftest import Flow, envelope
from ..live_client import settled
from .scene import NEXT_MONDAY_MS, AppClient, Boards, Clock, app_with_clock, boards_config

STREAM = "/api/v1/boards/{}/stream"


class Events:
    """The events of one open stream, parsed as an EventSource would."""

    def __init__(self, response: Any) -> None:
        self.response = response

    @classmethod
    async def open(cls, client: AppClient, board: str = "high", **headers: str) -> Events:
        response = await client.get(STREAM.format(board), headers=headers)
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        return cls(response)

    async def next(self, timeout: float = 3.0) -> dict[str, Any]:
        """The next event's fields (`id`, `event`, `data` parsed); comments skipped."""
        fields: dict[str, Any] = {}
        while True:
            line = (await asyncio.wait_for(self.response.content.readline(), timeout)).decode()
            assert line, "the stream ended"
            line = line.rstrip("\n")
            if not line:
                if fields:
                    fields["data"] = json.loads(fields["data"])
                    return fields
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value

    async def next_of(self, kind: str, timeout: float = 3.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            event = await self.next(max(0.01, deadline - time.monotonic()))
            if event["event"] == kind:
                return event

    def close(self) -> None:
        self.response.close()


async def test_a_stream_starts_with_a_snapshot_and_follows_the_board(client: AppClient, flow: Flow) -> None:
    boards = Boards(client, flow.bearer)
    await boards.write("high", {"userId": "alice", "score": 10}, key="a")
    events = await Events.open(client)
    first = await events.next()
    assert first["id"] == "1" and first["event"] == "leaderboard_update"
    assert first["data"]["type"] == "leaderboard_update" and first["data"]["data"]["seq"] == 1
    assert [(e["userId"], e["score"]) for e in first["data"]["data"]["leaderboard"]] == [("alice", 10)]
    await boards.write("high", {"userId": "bob", "score": 20}, key="b")
    update = await events.next_of("leaderboard_update")
    assert update["id"] == "2" and update["data"]["data"]["board"] == "high"
    assert [(e["userId"], e["change"]) for e in update["data"]["data"]["leaderboard"]] == [
        ("bob", "+20"),
        ("alice", "+0"),
    ]
    events.close()


async def test_a_reconnect_with_last_event_id_goes_on_from_the_next_id(client: AppClient, flow: Flow) -> None:
    boards = Boards(client, flow.bearer)
    await boards.write("high", {"userId": "alice", "score": 10}, key="a")
    events = await Events.open(client, **{"Last-Event-ID": "41"})
    snapshot = await events.next()
    assert snapshot["id"] == "42" and snapshot["data"]["data"]["seq"] == 42
    assert snapshot["data"]["data"]["leaderboard"][0]["userId"] == "alice"
    events.close()


async def test_a_stream_sees_its_period_end_then_the_new_period_by_the_alarm_alone(
    client: AppClient, flow: Flow, clock: Clock
) -> None:
    clock.now_ms = NEXT_MONDAY_MS - 1000
    await flow.award("alice", "q1")
    await flow.award("bob", "b1", "WEEKLY_ONLY")
    await settled(client)
    # The stream's subscription starts the board's broadcaster, whose alarm is set from this reading.
    clock.short_of_monday()
    events = await Events.open(client, "weekly")
    snapshot = await events.next()
    assert snapshot["id"] == "1" and snapshot["data"]["data"]["period"] == "2026-W49"
    await clock.reach_monday()
    # Nothing but the alarm wakes the board now: without it no event comes at all.
    ended = await events.next()
    assert ended["id"] == "2" and ended["event"] == "period_ended"
    assert ended["data"]["type"] == "period_ended"
    data = ended["data"]["data"]
    assert data["seq"] == 2 and data["board"] == "weekly" and data["period"] == "2026-W49"
    assert [(e["rank"], e["userId"], e["score"]) for e in data["leaderboard"]] == [(1, "alice", 100), (2, "bob", 7)]
    fresh = await events.next()
    assert fresh["id"] == "3" and fresh["event"] == "leaderboard_update"
    data = fresh["data"]["data"]
    assert data["seq"] == 3 and data["board"] == "weekly" and data["period"] == "2026-W50"
    assert data["leaderboard"] == []
    events.close()


@pytest.mark.parametrize(
    ("path", "headers", "status", "code"),
    [
        (STREAM.format("nope"), {}, 404, "BOARD_NOT_FOUND"),
        (STREAM.format("Bad%20Id"), {}, 400, "VALIDATION_ERROR"),
        (STREAM.format("high") + "?maxRate=0", {}, 400, "VALIDATION_ERROR"),
        (STREAM.format("high") + "?maxRate=fast", {}, 400, "VALIDATION_ERROR"),
        (STREAM.format("high") + "?maxRate=1&maxRate=100", {}, 400, "VALIDATION_ERROR"),
        (STREAM.format("high"), {"Last-Event-ID": "abc"}, 400, "VALIDATION_ERROR"),
        (STREAM.format("high"), {"Last-Event-ID": "-1"}, 400, "VALIDATION_ERROR"),
        (STREAM.format("high"), {"Last-Event-ID": "1e3"}, 400, "VALIDATION_ERROR"),
        (STREAM.format("high"), {"Last-Event-ID": "9" * 40}, 400, "VALIDATION_ERROR"),
        (STREAM.format("high"), {"Last-Event-ID": "\u0661"}, 400, "VALIDATION_ERROR"),  # an Arabic-Indic one
    ],
)
async def test_refusals_come_before_the_stream_in_the_envelope(
    client: AppClient, path: str, headers: dict[str, str], status: int, code: str
) -> None:
    response = await client.get(path, headers=headers)
    body = await envelope(response)
    assert response.status == status and body["error"]["code"] == code, body
    assert client.app[HUB].registry.connections == set()


async def test_a_draining_server_ends_its_streams(client: AppClient) -> None:
    events = await Events.open(client)
    await events.next()
    client.app[HUB].drain(within=1)
    assert await asyncio.wait_for(events.response.content.read(), 3) == b""  # the body ended
    response = await client.get(STREAM.format("high"))
    assert response.status == 503 and (await envelope(response))["error"]["code"] == "SERVICE_UNAVAILABLE"


async def test_a_stream_that_stops_reading_is_cut_and_others_go_on(
    client: AppClient, flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connections_module, "CLOSE_WAIT_SECONDS", 0.3)
    hub = client.app[HUB]
    boards = Boards(client, flow.bearer)
    # A raw socket that asks for the stream and never reads; a small receive buffer (set before
    # connecting, so the TCP window stays small) makes it fall behind soon.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (client.host, client.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(f"GET {STREAM.format('high')} HTTP/1.1\r\nHost: {client.host}\r\n\r\n".encode())
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        fast = await Events.open(client)
        await fast.next()
        subscribers = hub.waves["high"].subscribers
        assert len(subscribers) == 2
        for i in range(2000):  # each write raises a top-10 score, with a long name: one big event each
            await boards.write("high", {"userId": f"u{i % 10}-{'x' * 90}", "score": i + 1}, key=f"k{i}")
            await fast.next_of("leaderboard_update")  # every change reaches the fast client
            if len(subscribers) == 1:
                break
        assert len(subscribers) == 1, "the stream that never reads was not cut"
        assert hub.registry.slow_closed == 1
        await boards.write("high", {"userId": "last", "score": 10**6}, key="last")
        update = await fast.next_of("leaderboard_update")
        assert update["data"]["data"]["leaderboard"][0]["userId"] == "last"
        fast.close()
    finally:
        writer.close()


async def test_streams_count_against_the_live_connection_limits(
    aiohttp_client: Any, db_path: Path, storage: dict[str, Any], clock: Clock
) -> None:
    config = boards_config(db_path, storage, limits={"ws_connections_per_ip": 1})
    client: AppClient = await aiohttp_client(app_with_clock(config, clock))
    events = await Events.open(client)
    await events.next()
    refused = await client.get(STREAM.format("high"))
    body = await envelope(refused)
    assert refused.status == 429 and body["error"]["code"] == "RATE_LIMITED", body
    # A WebSocket shares the address's connections: its handshake is refused the same way.
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await client.ws_connect("/ws/scoreboard")
    assert caught.value.status == 429
    events.close()


async def test_a_quiet_stream_gets_keepalive_comments(
    aiohttp_client: Any, db_path: Path, storage: dict[str, Any], clock: Clock
) -> None:
    config = boards_config(db_path, storage, websocket={"heartbeat_seconds": 0.2})
    client: AppClient = await aiohttp_client(app_with_clock(config, clock))
    events = await Events.open(client)
    await events.next()
    lines = []
    while b": keepalive\n" not in lines:
        lines.append(await asyncio.wait_for(events.response.content.readline(), 3))
    events.close()


async def test_a_stream_carries_the_headers_every_answer_does(client: AppClient) -> None:
    events = await Events.open(client)
    headers = events.response.headers
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
    assert len(headers["X-Request-ID"]) >= 8
    events.close()


async def test_an_http_1_0_stream_is_plain_events_to_the_connections_end(client: AppClient, flow: Flow) -> None:
    await Boards(client, flow.bearer).write("high", {"userId": "alice", "score": 10}, key="a")
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(f"GET {STREAM.format('high')} HTTP/1.0\r\nHost: {client.host}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        assert head.startswith(b"HTTP/1.0 200") and b"Transfer-Encoding" not in head
        assert await asyncio.wait_for(reader.readuntil(b"\n\n"), 3) == b": connected\n\n"
        event = await asyncio.wait_for(reader.readuntil(b"\n\n"), 3)
        assert event.startswith(b"id: 1\nevent: leaderboard_update\ndata: {"), event  # no chunk sizes
    finally:
        writer.close()


async def test_a_head_of_the_stream_is_its_headers_alone(client: AppClient) -> None:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        # A HEAD, and a request after it on the same connection: the HEAD must end.
        writer.write(
            f"HEAD {STREAM.format('high')} HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
        after = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        assert after.startswith(b"HTTP/1.1 200"), after  # /healthz's answer, no event before it
        assert (await client.head(STREAM.format("nope"))).status == 404  # refusals as a GET's
    finally:
        writer.close()


async def test_an_http_1_0_keep_alive_stream_ends_its_connection_when_it_ends(client: AppClient) -> None:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(f"GET {STREAM.format('high')} HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n".encode())
        await asyncio.wait_for(reader.readuntil(b"id: 1\n"), 3)
        client.app[HUB].close_all(1012, "restarting")  # the stream ends, as in a drain
        await asyncio.wait_for(reader.read(), 3)  # its body's end is the connection's: it must close
    finally:
        writer.close()


async def test_a_retired_boards_channels_end_with_word_to_their_subscribers(
    client: AppClient, operator: dict[str, str]
) -> None:
    made = await client.post("/api/v1/admin/boards", json={"id": "cup"}, headers=operator)
    assert made.status == 201, await made.text()
    ws = await client.ws_connect("/ws/scoreboard")
    assert (await ws.receive_json())["type"] == "connected"
    for channel in ({"channel": "leaderboard"}, {"channel": "ranks", "from": 1, "to": 5}):
        await ws.send_json({"type": "subscribe", "board": "cup", **channel})
        assert (await ws.receive_json(timeout=3))["type"] == "subscribed"
        assert (await ws.receive_json(timeout=3))["type"] in ("leaderboard_update", "ranks_update")
    events = await Events.open(client, "cup")
    await events.next()
    retired = await client.delete("/api/v1/admin/boards/cup", headers=operator)
    assert retired.status == 200, await retired.text()
    told = [await ws.receive_json(timeout=3) for _ in range(4)]
    assert sorted((m["type"], m.get("channel") or m["error"]["code"]) for m in told) == [
        ("error", "BOARD_NOT_FOUND"),
        ("error", "BOARD_NOT_FOUND"),
        ("unsubscribed", "leaderboard"),
        ("unsubscribed", "ranks"),
    ]
    # Each error names the subscription it ends, whatever else the client awaits an answer to.
    refused = sorted(m["error"]["details"]["channel"] for m in told if m["type"] == "error")
    assert refused == ["leaderboard", "ranks"]
    assert all(m["error"]["details"]["board"] == "cup" for m in told if m["type"] == "error")
    assert client.app[HUB].subscriptions() == 0
    assert await asyncio.wait_for(events.response.content.read(), 3) == b""  # the stream ended
    assert (await client.get(STREAM.format("cup"))).status == 404  # and its reconnect is refused
    await ws.send_json({"type": "ping"})
    assert (await ws.receive_json(timeout=3))["type"] == "pong"  # the socket goes on
    await ws.close()
