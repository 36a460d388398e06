"""A real WebSocket client's side of the tests: receiving, waiting for the hub, subscribing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import jwt
import pytest
from aiohttp import WSMsgType

from app.api.keys import HUB

from .conftest import JWT_SECRET

WS = "/ws/scoreboard"


async def recv(ws: Any, timeout: float = 3.0) -> dict[str, Any]:
    """The next message, which must be JSON text."""
    msg = await ws.receive(timeout=timeout)
    assert msg.type == WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    data: dict[str, Any] = msg.json()
    return data


async def recv_type(ws: Any, kind: str, timeout: float = 3.0) -> dict[str, Any]:
    """The next message of a type, skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        message = await recv(ws, max(0.01, deadline - time.monotonic()))
        if message["type"] == kind:
            return message


async def messages_within(ws: Any, seconds: float) -> list[dict[str, Any]]:
    """Every message that arrives within `seconds`."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    with contextlib.suppress(TimeoutError):
        while (left := deadline - time.monotonic()) > 0:
            got.append(await recv(ws, timeout=left))
    return got


async def closed_with(ws: Any, timeout: float = 3.0) -> int | None:
    """The close code, once the messages still queued are read."""
    msg = await ws.receive(timeout=timeout)
    while msg.type == WSMsgType.TEXT:
        msg = await ws.receive(timeout=timeout)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING), msg
    return ws.close_code  # type: ignore[no-any-return]


async def settled(client: Any) -> None:
    """Wait until awards made so far have reached the hub (over Redis that takes a moment);
    fail when it is still making waves or has changes pending after 5 s."""
    hub = client.app[HUB]
    tally = hub.tally
    for _ in range(100):
        made = tally.made
        await asyncio.sleep(0.05)
        pending = any(w.pending for w in (*hub.waves.values(), *hub.windows.values()))
        if tally.made == made and not pending:
            return
    pytest.fail(f"the hub did not settle within 5 s ({tally.made} waves made, changes pending: {pending})")


async def subscribed(client: Any, path: str = WS, board: str | None = None) -> Any:
    """A connection subscribed to a board's leaderboard (the default one), its first board already read."""
    await settled(client)
    ws = await client.ws_connect(path)
    assert (await recv(ws))["type"] == "connected"
    await ws.send_json({"type": "subscribe", "channel": "leaderboard", **({"board": board} if board else {})})
    assert await recv(ws) == {"type": "subscribed", "channel": "leaderboard", "board": board or "global"}
    assert (await recv(ws))["type"] == "leaderboard_update"
    return ws


def token_for(user: str, *, ttl: float = 3600, name: str | None = None) -> str:
    """A user JWT signed with the test secret."""
    claims: dict[str, Any] = {"sub": user, "exp": int(time.time() + ttl)}
    if name is not None:
        claims["name"] = name
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")
