"""The Python SDK's live iterator against a real `run.py`: the board's messages, typed; refusals as
exceptions; and a stream that outlives a graceful restart (1012) and a crash of the server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from scoreboard_client import (
    Authenticated,
    BoardNotFound,
    Client,
    Connected,
    Forbidden,
    LeaderboardUpdate,
    LiveError,
    LiveMessage,
    LiveStream,
    Overtaken,
    PayloadTooLarge,
    RanksUpdate,
    RateLimited,
    ScoreboardError,
    ScoreUpdate,
    Subscribed,
    Unauthorized,
    UnexpectedResponse,
    Unsubscribed,
    ValidationError,
)
from scoreboard_client.live import subscriptions
from scoreboard_client.messages import Subscription
from scoreboard_client.models import BoardCreate

from app.errors import CLOSE_SERVICE_RESTART

from .boards.scene import RACER_KEY
from .real_servers import ServerProcess
from .sdk_server import running, sdk_server, token


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The module's running server."""
    yield from running(tmp_path_factory)


M = TypeVar("M")
WAIT_SECONDS = 10.0  # for an expected message; a restart of run.py included


async def next_of(live: LiveStream, kind: type[M], where: Callable[[M], bool] = lambda m: True) -> M:
    """The next message of `kind` that satisfies `where`, skipping others."""
    async with asyncio.timeout(WAIT_SECONDS):
        async for message in live:
            if isinstance(message, kind) and where(message):
                return message
    raise AssertionError(f"the stream ended before a {kind.__name__}")


def standing(update: LeaderboardUpdate) -> dict[str, int]:
    """User id -> score of a top-10 update."""
    return {e.user_id: e.score for e in update.data.leaderboard}


async def test_live_stream_yields_the_boards_messages(server: ServerProcess) -> None:
    async with (
        Client(server.url, token=token("watcher")) as client,
        Client(server.url, token=token("rival")) as rival,
        client.live(board="weekly") as live,
    ):
        connected = await anext(live)
        assert isinstance(connected, Connected) and connected.client_id
        assert await anext(live) == Authenticated(user_id="watcher")
        assert await anext(live) == Subscribed(channel="leaderboard", board="weekly")
        snapshot = await anext(live)
        assert isinstance(snapshot, LeaderboardUpdate)
        assert (snapshot.data.board, snapshot.data.period) == ("weekly", (await client.board("weekly")).period.id)

        await client.complete("COMPLETE_QUEST", "watch-1")
        mine = await next_of(live, ScoreUpdate, lambda m: m.data.board == "weekly")
        assert (mine.data.user_id, mine.data.previous_score, mine.data.new_score) == ("watcher", 0, 100)
        await next_of(live, LeaderboardUpdate, lambda m: standing(m).get("watcher") == 100)
        await rival.complete("COMPLETE_QUEST", "rival-1")
        await rival.complete("COMPLETE_QUEST", "rival-2")
        update = await next_of(live, LeaderboardUpdate, lambda m: standing(m).get("rival") == 200)
        ranked = [(e.user_id, e.rank) for e in update.data.leaderboard]
        assert ranked.index(("rival", 1)) < ranked.index(("watcher", 2))


async def test_live_stream_tells_who_passed_and_replays_the_kept_notices(server: ServerProcess) -> None:
    async with (
        Client(server.url, token=token("passed")) as me,
        Client(server.url, token=token("passer")) as other,
    ):
        await me.complete("COMPLETE_QUEST", "passed-1")
        await other.complete("COMPLETE_QUEST", "passer-1")  # a tie, reached later: behind
        async with me.live(board="weekly", notifications=True) as live:
            await next_of(live, Subscribed, lambda m: m.channel == "notifications")
            await other.complete("COMPLETE_QUEST", "passer-2")  # passes me on global and weekly
            told = [await next_of(live, Overtaken), await next_of(live, Overtaken)]
        assert sorted(m.data.board for m in told) == ["global", "weekly"]
        assert {(m.data.user_id, m.data.by.user_id, m.data.by.score) for m in told} == {("passed", "passer", 200)}
        assert all(m.data.new_rank == m.data.previous_rank + 1 for m in told)
        # A stream opened later replays the kept ones, with the same ids.
        async with me.live(board="weekly", notifications=True) as again:
            replayed = [await next_of(again, Overtaken), await next_of(again, Overtaken)]
        assert [m.id for m in replayed] == sorted(m.id or 0 for m in told) and [m.data for m in replayed] == [
            m.data for m in sorted(told, key=lambda m: m.id or 0)
        ]


async def test_an_anonymous_stream_ends_with_its_client(server: ServerProcess) -> None:
    async with Client(server.url) as client:
        live = client.live()
        assert isinstance(await anext(live), Connected)
        assert await anext(live) == Subscribed(channel="leaderboard", board="global")
        assert isinstance(await anext(live), LeaderboardUpdate)
    with pytest.raises(StopAsyncIteration):
        await anext(live)


async def test_refusals_raise(server: ServerProcess) -> None:
    async with Client(server.url) as client, client.live(board="nope") as live:
        assert isinstance(await anext(live), Connected)
        with pytest.raises(BoardNotFound) as caught:
            await anext(live)
        assert (caught.value.status, caught.value.code) == (404, "BOARD_NOT_FOUND")
        assert caught.value.details == {"channel": "leaderboard", "board": "nope"}
        with pytest.raises(StopAsyncIteration):
            await anext(live)
    async with Client(server.url, token="not-a-jwt") as forged, forged.live() as live:
        with pytest.raises(Unauthorized):
            await anext(live)
    async with Client(server.url) as anonymous:
        with pytest.raises(ValueError, match="token"):
            anonymous.live(around=5)


async def test_live_windows_follow_the_board(server: ServerProcess) -> None:
    async with (
        Client(server.url, token=token("climber"), service_key=RACER_KEY) as client,
        client.live(board="global", around=1, ranks=(1, 2)) as live,
    ):
        # Far above what the module's other tests award anyone, so these two lead the board.
        await client.write_score("global", "ahead", 40_000)
        for _ in range(5):
            await client.write_score("global", "climber", 10_000)
        expected = {1: ("climber", 50_000), 2: ("ahead", 40_000)}
        windows: dict[str, dict[int, tuple[str, int]]] = {"around": {}, "ranks": {}}
        seqs: dict[str, list[int]] = {"around": [], "ranks": []}
        async with asyncio.timeout(WAIT_SECONDS):
            async for message in live:
                if not isinstance(message, RanksUpdate):
                    continue
                data = message.data
                assert data.channel is not None
                seqs[data.channel].append(data.seq)
                if data.snapshot:
                    windows[data.channel] = {}
                windows[data.channel].update({e.rank: (e.user_id, e.score) for e in data.entries})
                if windows == {"around": expected, "ranks": expected}:
                    break
        for numbers in seqs.values():
            assert numbers == list(range(1, len(numbers) + 1))


def test_subscribe_messages_follow_the_contract() -> None:
    # The windows and the notices are the contract's "Live, beyond the top 10".
    assert subscriptions(board=None, around=None, ranks=None, notifications=False, after=None, max_rate=None) == [
        {"type": "subscribe", "channel": "leaderboard"}
    ]
    assert subscriptions(board="weekly", around=5, ranks=(1, 50), notifications=True, after=41, max_rate=2.5) == [
        {"type": "subscribe", "channel": "leaderboard", "board": "weekly", "maxRate": 2.5},
        {"type": "subscribe", "channel": "around", "board": "weekly", "maxRate": 2.5, "radius": 5},
        {"type": "subscribe", "channel": "ranks", "board": "weekly", "maxRate": 2.5, "from": 1, "to": 50},
        {"type": "subscribe", "channel": "notifications", "after": 41},
    ]


async def test_live_stream_outlives_a_restart_and_a_crash(tmp_path: Path) -> None:
    process = sdk_server(tmp_path)
    await process.astart()
    received: asyncio.Queue[LiveMessage] = asyncio.Queue()

    async def until(kind: type[M], where: Callable[[M], bool] = lambda m: True) -> M:
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                message: Any = await received.get()
                if isinstance(message, kind) and where(message):
                    return message

    try:
        async with Client(process.url, token=token("phoenix"), backoff_base=0.05, backoff_cap=0.5) as client:
            live = client.live()

            async def consume() -> None:
                async for message in live:
                    received.put_nowait(message)

            consumer = asyncio.create_task(consume())
            await until(LeaderboardUpdate)

            await process.astop()  # SIGINT: the server drains, closing the socket with 1012
            await process.astart()
            await until(Subscribed)  # again, by itself
            await client.complete("COMPLETE_QUEST", "after-restart")
            await until(LeaderboardUpdate, lambda m: standing(m).get("phoenix") == 100)
            assert live.close_codes == [CLOSE_SERVICE_RESTART]

            await asyncio.to_thread(process.kill)  # no close frame: the connection just breaks
            await process.astart()
            await until(Subscribed)
            await client.complete("COMPLETE_QUEST", "after-crash")
            await until(LeaderboardUpdate, lambda m: standing(m).get("phoenix") == 200)
            assert len(live.close_codes) == 2 and live.close_codes[1] != CLOSE_SERVICE_RESTART

            await live.aclose()
            await asyncio.wait_for(consumer, WAIT_SECONDS)  # iteration ended
    finally:
        await process.astop()


def sse_stub(*, events: int, every: float, then_silent: bool = False) -> web.Application:
    """A board stream that sends `events` snapshots `every` seconds apart, with keepalives between,
    then ends (or, `then_silent`, holds the connection without a byte more)."""

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for seq in range(1, events + 1):
            board = {"board": "global", "period": "all", "leaderboard": [], "updatedAt": "t", "seq": seq}
            data = json.dumps({"type": "leaderboard_update", "data": board})
            await response.write(f"id: {seq}\nevent: leaderboard_update\ndata: {data}\n\n".encode())
            await asyncio.sleep(every / 2)
            await response.write(b": keepalive\n\n")
            await asyncio.sleep(every / 2)
        if then_silent:
            await asyncio.sleep(WAIT_SECONDS)
        return response

    app = web.Application()
    app.router.add_get("/api/v1/boards/global/stream", stream)
    return app


async def test_events_outlast_any_total_timeout(aiohttp_server: Any) -> None:
    # The session's default total timeout (aiohttp's is 300 s, here 0.3 s) does not end a stream
    # that is still sending; the client's own `timeout` bounds only the connecting.
    stub = await aiohttp_server(sse_stub(events=8, every=0.1))
    short = aiohttp.ClientTimeout(total=0.3)
    async with (
        aiohttp.ClientSession(timeout=short) as session,
        Client(str(stub.make_url("")), session=session) as client,
    ):
        seen = [event_id async for event_id, _ in client.events("global")]
    assert seen == list(range(1, 9))


async def test_events_give_up_on_a_silent_stream(aiohttp_server: Any) -> None:
    stub = await aiohttp_server(sse_stub(events=1, every=0.1, then_silent=True))
    async with Client(str(stub.make_url(""))) as client:
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            async for _ in client.events("global", idle_timeout=0.5):
                pass
        assert time.monotonic() - began < WAIT_SECONDS / 2


async def test_an_event_that_is_not_a_live_message_raises_unexpected_response(aiohttp_server: Any) -> None:
    # A proxy's page, or a message of the wrong shape, in the stream: not a raw decoding error.
    for data in ("<html>not json</html>", '{"type":"leaderboard_update","data":{"seq":"one"}}'):

        async def stream(request: web.Request, data: str = data) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            await response.write(f"id: 1\ndata: {data}\n\n".encode())
            return response

        app = web.Application()
        app.router.add_get("/api/v1/boards/global/stream", stream)
        stub = await aiohttp_server(app)
        async with Client(str(stub.make_url(""))) as client:
            with pytest.raises(UnexpectedResponse, match="not a live message"):
                async for _ in client.events("global"):
                    pass


CONNECTED = '{"type":"connected","timestamp":"t","clientId":"c"}'
Script = Callable[[web.WebSocketResponse, int], Awaitable[None]]


async def ws_stub(aiohttp_server: Any, script: Script) -> str:
    """The address of a WebSocket server that plays `script` with each connection (and its number, from 1)."""
    connections = 0

    async def live(request: web.Request) -> web.WebSocketResponse:
        nonlocal connections
        connections += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await script(ws, connections)
        return ws

    app = web.Application()
    app.router.add_get("/ws/scoreboard", live)
    stub = await aiohttp_server(app)
    return str(stub.make_url(""))


async def serve(ws: web.WebSocketResponse, *, close: int | None = None) -> None:
    """Greet, then answer `auth` and every `subscribe` as the server does until the client closes;
    with `close`, close with that code on the first message instead."""
    await ws.send_str(CONNECTED)
    async for msg in ws:
        sent = json.loads(msg.data)
        if close is not None:
            await ws.close(code=close)
        elif sent["type"] == "auth":
            await ws.send_str(json.dumps({"type": "authenticated", "userId": "u"}))
        elif sent["type"] == "subscribe":
            await ws.send_str(json.dumps({"type": "subscribed", "channel": sent["channel"], "board": "global"}))


async def test_a_token_too_long_for_auth_raises(server: ServerProcess) -> None:
    # The server closes a connection whose `auth` message is over 4 KiB with 1009: any other would be.
    async with Client(server.url, token="x" * 4096) as client, client.live() as live:
        with pytest.raises(PayloadTooLarge):
            await asyncio.wait_for(anext(live), WAIT_SECONDS)
        assert live.attempts == 1


async def test_one_connection_too_many_raises_after_the_retries(server: ServerProcess) -> None:
    async with Client(server.url, token=token("crowded"), retries=1, backoff_base=0.01) as client:
        held = [client.live() for _ in range(5)]  # limits.ws_connections_per_user
        for live in held:
            await next_of(live, Subscribed)
        sixth = client.live()
        with pytest.raises(RateLimited) as caught:
            await asyncio.wait_for(anext(sixth), WAIT_SECONDS)
        assert (caught.value.status, caught.value.code, sixth.attempts) == (429, "RATE_LIMITED", 2)


# A close in the handshake (after `auth`) or on a stream that was going (after `subscribe`).
DURING = {"handshake": "a-token", "stream": None}


@pytest.mark.parametrize("during", DURING)
@pytest.mark.parametrize(
    ("code", "error"), [(1003, ValidationError), (1007, ValidationError), (1008, Forbidden), (4000, ScoreboardError)]
)
async def test_a_close_another_connection_would_meet_raises(
    aiohttp_server: Any, during: str, code: int, error: type[ScoreboardError]
) -> None:
    async def closing(ws: web.WebSocketResponse, n: int) -> None:
        await serve(ws, close=code)

    url = await ws_stub(aiohttp_server, closing)
    async with Client(url, token=DURING[during], backoff_base=0.01) as client, client.live() as live:
        with pytest.raises(error):
            async with asyncio.timeout(WAIT_SECONDS):
                async for _ in live:
                    pass
        assert live.attempts == 1


@pytest.mark.parametrize("during", DURING)
@pytest.mark.parametrize("code", [1001, 1011, 1012, 1013])
async def test_a_passing_close_is_followed_by_a_reconnect(aiohttp_server: Any, during: str, code: int) -> None:
    async def first_closed(ws: web.WebSocketResponse, n: int) -> None:
        await serve(ws, close=code if n == 1 else None)

    url = await ws_stub(aiohttp_server, first_closed)
    async with Client(url, token=DURING[during], backoff_base=0.01) as client, client.live() as live:
        await next_of(live, Subscribed)
        assert live.attempts == 2


@pytest.mark.parametrize("frame", ["<html>not json</html>", '{"type":"subscribed","channel":7}'])
async def test_a_frame_that_is_not_a_live_message(aiohttp_server: Any, frame: str) -> None:
    # Something else answered on the WebSocket's address, or a message of a known type is malformed.
    closed = asyncio.Event()

    async def garbage(ws: web.WebSocketResponse, n: int) -> None:
        await ws.send_str(CONNECTED)
        await ws.receive()  # the subscription
        await ws.send_str(frame)
        await ws.receive()  # the client's close
        closed.set()

    async with Client(await ws_stub(aiohttp_server, garbage)) as client, client.live() as live:
        assert isinstance(await anext(live), Connected)
        with pytest.raises(UnexpectedResponse) as caught:
            await asyncio.wait_for(anext(live), WAIT_SECONDS)
        assert caught.value.code == "UNEXPECTED_RESPONSE" and frame[:20] in caught.value.message
        await asyncio.wait_for(closed.wait(), WAIT_SECONDS)  # the socket is closed, not left open
        with pytest.raises(StopAsyncIteration):
            await anext(live)


async def test_a_retired_boards_subscriptions_end_and_the_stream_goes_on(server: ServerProcess) -> None:
    async with Client(server.url, token=token("curator", roles=("admin",))) as client:
        await client.create_board(BoardCreate(id="cup"))
        async with client.live(board="cup", ranks=(1, 5)) as live:
            await next_of(live, Subscribed, lambda m: m.channel == "ranks")
            await client.retire_board("cup")
            ended = [await next_of(live, LiveError), await next_of(live, LiveError)]
            assert {e.error.code for e in ended} == {"BOARD_NOT_FOUND"}
            assert sorted((e.error.details.channel, e.error.details.board) for e in ended if e.error.details) == [
                ("leaderboard", "cup"),
                ("ranks", "cup"),
            ]
            await next_of(live, Unsubscribed)
            # Going on: the user's own messages still come, and a reconnect does not subscribe to the
            # retired board again (that would be refused, and raise).
            assert live._ws is not None
            await live._ws.close()
            await next_of(live, Authenticated)
            await client.complete("COMPLETE_QUEST", "after-the-cup")
            update = await next_of(live, ScoreUpdate)
            assert update.data.user_id == "curator" and live.attempts == 2


async def test_an_error_is_routed_to_the_subscription_it_names(aiohttp_server: Any) -> None:
    # A retirement's error may come between the answers to the subscriptions of a (re)connect.
    async def interleaved(ws: web.WebSocketResponse, n: int) -> None:
        await ws.send_str(CONNECTED)
        async for msg in ws:
            channel = json.loads(msg.data)["channel"]
            if channel == "leaderboard":
                await ws.send_str(json.dumps({"type": "subscribed", "channel": "leaderboard", "board": "cup"}))
                continue
            ended = {"channel": "leaderboard", "board": "cup"}
            error = {"code": "BOARD_NOT_FOUND", "message": "retired", "details": ended}
            await ws.send_str(json.dumps({"type": "error", "error": error}))
            await ws.send_str(json.dumps({"type": "unsubscribed", **ended}))
            refused = {
                "code": "VALIDATION_ERROR",
                "message": "bad window",
                "details": {"channel": channel, "board": "cup"},
            }
            await ws.send_str(json.dumps({"type": "error", "error": refused}))

    async with Client(await ws_stub(aiohttp_server, interleaved)) as client, client.live("cup", ranks=(9, 1)) as live:
        assert isinstance(await anext(live), Connected)
        assert await anext(live) == Subscribed(channel="leaderboard", board="cup")
        ended = await anext(live)
        assert isinstance(ended, LiveError) and ended.error.details == Subscription(channel="leaderboard", board="cup")
        assert await anext(live) == Unsubscribed(channel="leaderboard", board="cup")
        with pytest.raises(ValidationError) as caught:
            await asyncio.wait_for(anext(live), WAIT_SECONDS)
        assert caught.value.details == {"channel": "ranks", "board": "cup"}
