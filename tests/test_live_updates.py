"""Live updates with a real client: award messages, waves, coalescing, slow clients, heartbeats,
and the page's first render."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any

import jwt
import pytest
from aiohttp import WSMsgType

from app.api.keys import HUB
from app.errors import CLOSE_UNAUTHORIZED
from app.live import connections as connections_module

from .conftest import JWT_SECRET, Flow, MakeClient, envelope
from .contracts import until
from .live_client import WS, closed_with, recv, recv_type, settled, subscribed, token_for


async def test_award_messages(flow: Flow, client: Any) -> None:
    await flow.award("bob", "q1")  # bob 100, rank 1
    viewer = await subscribed(client)
    alice = await client.ws_connect(f"{WS}?token={token_for('alice')}")
    bob = await client.ws_connect(f"{WS}?token={token_for('bob')}")
    await recv(alice), await recv(bob)

    await flow.award("alice", "boss", "DEFEAT_BOSS")  # alice 500 passes bob
    update = await recv_type(viewer, "leaderboard_update")
    assert update["data"]["leaderboard"] == [
        {"rank": 1, "userId": "alice", "username": "Alice", "score": 500, "change": "+500"},
        {"rank": 2, "userId": "bob", "username": "Bob", "score": 100, "change": "+0"},
    ]
    assert await recv_type(alice, "score_update") == {
        "type": "score_update",
        "data": {
            "board": "global",
            "period": "all",
            "userId": "alice",
            "previousScore": 0,
            "newScore": 500,
            "scoreIncrement": 500,
            "newRank": 1,
            "previousRank": None,
        },
    }
    assert (await recv_type(bob, "rank_change"))["data"] == {
        "board": "global",
        "period": "all",
        "userId": "bob",
        "previousRank": 1,
        "newRank": 2,
        "score": 100,
    }

    await flow.award("bob", "boss", "DEFEAT_BOSS")  # bob 600 passes alice back
    assert (await recv_type(bob, "score_update"))["data"]["previousRank"] == 2
    assert (await recv_type(bob, "rank_change"))["data"] == {
        "board": "global",
        "period": "all",
        "userId": "bob",
        "previousRank": 2,
        "newRank": 1,
        "score": 600,
    }
    assert (await recv_type(alice, "rank_change"))["data"] == {
        "board": "global",
        "period": "all",
        "userId": "alice",
        "previousRank": 1,
        "newRank": 2,
        "score": 500,
    }
    update = await recv_type(viewer, "leaderboard_update")
    assert [(e["userId"], e["change"]) for e in update["data"]["leaderboard"]] == [("bob", "+500"), ("alice", "+0")]
    for ws in (viewer, alice, bob):
        await ws.close()


async def test_only_connected_users_on_the_board_can_be_overtaken(flow: Flow, client: Any) -> None:
    await flow.award("bob", "q1")  # on the board before connecting
    hub = client.app[HUB]
    viewer = await client.ws_connect(f"{WS}?token={token_for('carol')}")  # never scored
    bob = await client.ws_connect(f"{WS}?token={token_for('bob')}")
    await recv(viewer), await recv(bob)

    async def bob_alone() -> bool:  # both are watched from their greeting until found on a board or not
        return bool(hub.notices.watched_users() == {"bob"})

    await until(bob_alone, "carol, never scored, no longer asked about when someone moves up")
    await flow.award("carol", "boss", "DEFEAT_BOSS")
    assert (await recv_type(bob, "rank_change"))["data"]["newRank"] == 2
    assert hub.notices.watched_users() == {"bob", "carol"}
    await viewer.close()
    await settled(client)
    assert hub.notices.watched_users() == {"bob"}
    await bob.close()


async def test_award_outside_top_10_sends_no_wave(flow: Flow, client: Any) -> None:
    for i in range(10):
        await flow.award(f"top{i}", "boss", "DEFEAT_BOSS")
    viewer = await subscribed(client)
    hub = client.app[HUB]
    waves = hub.tally.made
    await flow.award("small", "q1")  # 100 < 500: rank 11
    await asyncio.sleep(0.1)
    assert hub.tally.made == waves
    await viewer.send_json({"type": "ping"})
    assert (await recv(viewer))["type"] == "pong"  # nothing else was queued before it
    await viewer.close()


async def test_burst_is_coalesced_and_ends_on_the_true_state(flow: Flow, client: Any) -> None:
    viewer = await subscribed(client)
    tokens = await asyncio.gather(*(flow.token(f"p{i % 40}", f"a{i}") for i in range(200)))
    responses = await asyncio.gather(
        *(flow.submit(t, user=f"p{i % 40}", action_id=f"a{i}") for i, t in enumerate(tokens))
    )
    assert {r.status for r in responses} == {200}
    top = (await envelope(await client.get("/api/v1/scoreboard/top")))["data"]["leaderboard"]
    expected = [{k: e[k] for k in ("rank", "userId", "username", "score")} for e in top]
    last = None
    waves = 0
    while True:
        try:
            message = await recv(viewer, timeout=0.5)
        except TimeoutError:
            break
        waves += 1
        last = [{k: e[k] for k in ("rank", "userId", "username", "score")} for e in message["data"]["leaderboard"]]
    assert last == expected
    assert 1 <= waves < 200  # coalesced, yet the last state arrived
    await viewer.close()


async def test_slow_client_never_delays_others(
    make_client: MakeClient, bearer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connections_module, "CLOSE_WAIT_SECONDS", 0.3)
    # Above the transport's 64 KiB high-water mark: a dropped client's close then has to drain.
    client = await make_client(websocket={"send_buffer_bytes": 70_000})
    flow = Flow(client, bearer)
    hub = client.app[HUB]
    # A raw socket that upgrades, subscribes and then never reads again; a small receive
    # buffer (set before connecting, so the TCP window stays small) makes it fall behind soon.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (client.host, client.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(
            f"GET {WS} HTTP/1.1\r\nHost: {client.host}:{client.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await reader.readuntil(b"\r\n\r\n")
        payload = b'{"type":"subscribe","channel":"leaderboard"}'
        writer.write(bytes((0x81, 0x80 | len(payload))) + b"\x00\x00\x00\x00" + payload)  # zero mask
        await writer.drain()
        await asyncio.sleep(0.1)
        subscribers = hub.waves["global"].subscribers
        assert len(subscribers) == 1
        slow = next(iter(subscribers))

        fast = await subscribed(client)
        for i in range(1000):  # each award raises a top-10 score: one wave each
            await flow.award(f"u{i % 10}", f"a{i}")
            await recv_type(fast, "leaderboard_update", timeout=2.0)  # every wave reaches the fast client
            if len(subscribers) == 1:
                break
        assert set(subscribers) <= hub.registry.connections
        assert len(subscribers) == 1, "the client that never reads was not dropped"
        for j in range(5):  # and the fast one keeps getting every wave afterwards
            await flow.award(f"u{j}", f"b{j}")
            await recv_type(fast, "leaderboard_update", timeout=2.0)
        # Its close cannot drain to a peer that does not read: the socket is cut after the wait.
        transport = slow.transport
        assert transport is not None
        deadline = time.monotonic() + 3
        while not transport.is_closing() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert transport.is_closing()
        await fast.close()
    finally:
        # Also when an assertion failed: an open socket that never reads would hold the teardown.
        writer.close()


async def test_jwt_expiry_closes_socket_once_the_leeway_is_over(make_client: MakeClient) -> None:
    client = await make_client(auth={"leeway_seconds": 2})
    expires = int(time.time()) + 1
    token = jwt.encode({"sub": "alice", "exp": expires}, JWT_SECRET, algorithm="HS256")
    ws = await client.ws_connect(f"{WS}?token={token}")
    assert (await recv(ws))["type"] == "connected"
    await asyncio.sleep(expires + 0.5 - time.time())
    # Past `exp`, within the leeway: still accepted, as a REST call with it would be.
    answer = await client.get("/api/v1/users/me/notifications", headers={"Authorization": f"Bearer {token}"})
    assert answer.status == 200, await answer.text()
    await ws.send_json({"type": "ping"})
    assert (await recv(ws))["type"] == "pong"
    assert await closed_with(ws, timeout=5) == CLOSE_UNAUTHORIZED
    assert time.time() >= expires + 2


async def test_protocol_heartbeat_closes_silent_peer(make_client: MakeClient) -> None:
    client = await make_client(websocket={"heartbeat_seconds": 0.2})
    ws = await client.ws_connect(WS, autoping=False)
    assert (await recv(ws))["type"] == "connected"
    msg = await ws.receive(timeout=3)
    assert msg.type == WSMsgType.PING  # the server pings; this client never answers
    deadline = time.monotonic() + 3
    while not ws.closed and time.monotonic() < deadline:
        msg = await ws.receive(timeout=3)
    assert ws.closed and len(client.app[HUB].registry.connections) == 0


async def test_heartbeat_keeps_a_peer_that_answers(make_client: MakeClient) -> None:
    client = await make_client(websocket={"heartbeat_seconds": 0.2})
    ws = await client.ws_connect(WS, autoping=False)
    assert (await recv(ws))["type"] == "connected"
    pings = 0
    deadline = time.monotonic() + 1.5  # more than seven intervals
    while time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            msg = await ws.receive(timeout=0.1)
            assert msg.type == WSMsgType.PING, msg
            pings += 1
            await ws.pong(msg.data)
    assert pings >= 3 and not ws.closed and len(client.app[HUB].registry.connections) == 1
    # A peer's own ping is answered as well.
    await ws.ping(b"are-you-there")
    while (msg := await ws.receive(timeout=3)).type == WSMsgType.PING:
        pass
    assert msg.type == WSMsgType.PONG and msg.data == b"are-you-there"
    await ws.close()


async def test_heartbeat_counts_any_message_as_an_answer(make_client: MakeClient) -> None:
    client = await make_client(websocket={"heartbeat_seconds": 0.2})
    ws = await client.ws_connect(WS, autoping=False)
    assert (await recv(ws))["type"] == "connected"
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # never a PONG, but a contract ping every 50 ms
        await ws.send_json({"type": "ping"})
        await asyncio.sleep(0.05)
    assert not ws.closed and len(client.app[HUB].registry.connections) == 1
    await ws.close()


async def test_page_renders_top_and_escapes_names(flow: Flow, client: Any) -> None:
    hostile = '<img src=x onerror=alert(1)>"&'
    resp = await client.post(
        "/api/v1/actions/initialize",
        json={"actionType": "COMPLETE_QUEST", "actionId": "x"},
        headers={"Authorization": f"Bearer {token_for('eve', name=hostile)}"},
    )
    token = (await envelope(resp))["data"]["actionToken"]
    resp = await client.post(
        "/api/v1/scoreboard/update",
        json={"actionToken": token, "actionId": "x"},
        headers={"Authorization": f"Bearer {token_for('eve', name=hostile)}"},
    )
    assert resp.status == 200
    page = await client.get("/")
    html = await page.text()
    assert page.status == 200 and "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;&#34;&amp;" in html
    assert 'data-user-id="eve"' in html
    for asset in ("/static/board.js", "/static/board.css"):
        assert asset in html and (await client.get(asset)).status == 200
    assert "http://" not in html and "https://" not in html
    head = await client.head("/")
    assert head.status == 200
