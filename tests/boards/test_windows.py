"""Live rank windows (`ranks`, `around`), `seq` and `maxRate` over a real WebSocket, in every
storage set-up: a subscriber that applies every message in order holds what the REST routes answer."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any, cast

import pytest

from app.api.keys import HUB
from app.boards.board import Board
from app.live.connections import Connection
from app.live.windows import WindowKey, Windows
from app.ranking.memory import MemoryRanking
from app.records import EntryChange, Move, Standing
from app.settings import BoardSettings

from ..conftest import Flow
from ..contracts import eventually
from ..live_client import WS, recv, recv_type, settled, token_for
from .scene import NEXT_MONDAY_MS, AppClient, Boards, Clock


class Viewer:
    """One connection's view of one window: every `ranks_update` applied in order, `seq` checked."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.state: dict[int, tuple[str, int]] = {}
        self.seq = 0
        self.total = 0
        self.messages = 0
        self.period = ""

    @classmethod
    async def open(cls, client: AppClient, subscription: dict[str, Any], user: str | None = None) -> Viewer:
        path = f"{WS}?token={token_for(user)}" if user else WS
        ws = await client.ws_connect(path)
        assert (await recv(ws))["type"] == "connected"
        viewer = cls(ws)
        await viewer.subscribe(subscription)
        return viewer

    async def subscribe(self, subscription: dict[str, Any]) -> None:
        await self.ws.send_json({"type": "subscribe", **subscription})
        assert (await recv(self.ws))["type"] == "subscribed"
        self.seq = 0
        first = await recv(self.ws)
        assert first["type"] == "ranks_update" and first["data"]["snapshot"], first
        self.apply(first)

    def apply(self, message: dict[str, Any]) -> None:
        data = message["data"]
        assert data["seq"] == self.seq + 1, (data["seq"], self.seq)
        self.seq = data["seq"]
        self.messages += 1
        self.period = data["period"]
        if data["snapshot"]:
            self.state = {}
        for e in data["entries"]:
            self.state[e["rank"]] = (e["userId"], e["score"])
        self.total = data["total"]

    async def drain(self, quiet: float = 0.15) -> None:
        """Apply what has arrived, until nothing comes for `quiet` seconds."""
        while True:
            try:
                message = await recv(self.ws, timeout=quiet)
            except TimeoutError:
                return
            if message["type"] == "ranks_update":
                self.apply(message)


def _rows(data: dict[str, Any]) -> dict[int, tuple[str, int]]:
    # GET /ranks answers `leaderboard`, GET /around `entries`.
    shown = data["entries"] if "entries" in data else data["leaderboard"]
    return {e["rank"]: (e["userId"], e["score"]) for e in shown}


async def _converged(viewer: Viewer, expected: Any) -> None:
    async def check() -> None:
        await viewer.drain()
        assert viewer.state == await expected()

    await eventually(check, seconds=10)


async def test_a_ranks_window_ends_equal_to_get_ranks_after_a_burst_and_a_reconnect(
    client: AppClient, flow: Flow
) -> None:
    boards = Boards(client, flow.bearer)
    rng = random.Random(7)
    for i in range(30):
        await boards.write("latest", {"userId": f"u{i}", "score": rng.randrange(1000)}, key=f"seed-{i}")
    window = {"channel": "ranks", "board": "latest", "from": 5, "to": 14}
    viewer = await Viewer.open(client, window)
    assert sorted(viewer.state) == list(range(5, 15)) and viewer.total == 30

    async def expected() -> dict[int, tuple[str, int]]:
        return _rows(await boards.get("/api/v1/boards/latest/ranks", from_=5, limit=10))

    # 500 writes: `set` moves users up and down, new users join; the viewer reconnects midway.
    for n in range(500):
        user = f"u{rng.randrange(40)}"
        await boards.write("latest", {"userId": user, "score": rng.randrange(1000)}, key=f"w-{n}")
        if n % 50 == 49:
            await viewer.drain(quiet=0.01)
        if n == 250:
            await viewer.ws.close()
            viewer = await Viewer.open(client, window)
    await settled(client)
    await _converged(viewer, expected)
    assert viewer.total == 40
    await viewer.ws.close()


async def test_an_around_window_follows_its_user(client: AppClient, flow: Flow) -> None:
    boards = Boards(client, flow.bearer)
    for i in range(20):
        await boards.write("high", {"userId": f"u{i}", "score": 100 * (i + 1)}, key=f"seed-{i}")
    viewer = await Viewer.open(client, {"channel": "around", "board": "high", "radius": 2}, "u3")
    # u3 has 400: rank 17 of 20.
    assert viewer.state == {15: ("u5", 600), 16: ("u4", 500), 17: ("u3", 400), 18: ("u2", 300), 19: ("u1", 200)}

    async def expected() -> dict[int, tuple[str, int]]:
        return _rows(await boards.get("/api/v1/boards/high/around/u3", radius=2))

    rng = random.Random(3)
    for n in range(200):
        user = "u3" if n % 10 == 0 else f"u{rng.randrange(25)}"
        await boards.write("high", {"userId": user, "score": rng.randrange(3000)}, key=f"w-{n}")
        if n == 100:
            await viewer.ws.close()
            viewer = await Viewer.open(client, {"channel": "around", "board": "high", "radius": 2}, "u3")
    await settled(client)
    await _converged(viewer, expected)
    top = await boards.get("/api/v1/boards/high/around/u3", radius=2)
    assert viewer.state[top["rank"]][0] == "u3"
    await viewer.ws.close()


async def test_windows_end_equal_to_the_routes_after_500_awards_with_a_reconnect(client: AppClient, flow: Flow) -> None:
    boards = Boards(client, flow.bearer)
    rng = random.Random(11)
    # Awards of 100 (COMPLETE_QUEST) and 500 (DEFEAT_BOSS) on the default board: users overtake
    # each other in steps, ties broken by who got there first.
    for i in range(12):
        await flow.award(f"p{i}", "seed", "DEFEAT_BOSS" if i % 3 == 0 else "COMPLETE_QUEST")
    ranks = {"channel": "ranks", "from": 3, "to": 8}
    around = {"channel": "around", "radius": 2}
    windows = [await Viewer.open(client, ranks), await Viewer.open(client, around, "p5")]
    for n in range(500):
        user = f"p{rng.randrange(15)}"
        await flow.award(user, f"a{n}", "DEFEAT_BOSS" if rng.random() < 0.1 else "COMPLETE_QUEST")
        if n % 50 == 49:
            for viewer in windows:
                await viewer.drain(quiet=0.01)
        if n == 250:  # both reconnect midway: a fresh snapshot, then diffs again
            for viewer in windows:
                await viewer.ws.close()
            windows = [await Viewer.open(client, ranks), await Viewer.open(client, around, "p5")]
    await settled(client)

    async def expected_ranks() -> dict[int, tuple[str, int]]:
        return _rows(await boards.get("/api/v1/boards/global/ranks", from_=3, limit=6))

    async def expected_around() -> dict[int, tuple[str, int]]:
        return _rows(await boards.get("/api/v1/boards/global/around/p5", radius=2))

    await _converged(windows[0], expected_ranks)
    await _converged(windows[1], expected_around)
    for viewer in windows:
        await viewer.ws.close()


async def test_around_a_user_not_on_the_board_is_empty_until_they_are(client: AppClient, flow: Flow) -> None:
    boards = Boards(client, flow.bearer)
    await boards.write("high", {"userId": "bob", "score": 50}, key="b")
    viewer = await Viewer.open(client, {"channel": "around", "board": "high", "radius": 1}, "carol")
    assert viewer.state == {} and viewer.total == 1
    await boards.write("high", {"userId": "carol", "score": 70}, key="c")
    message = await recv_type(viewer.ws, "ranks_update")
    viewer.apply(message)
    assert message["data"]["snapshot"] is True
    assert viewer.state == {1: ("carol", 70), 2: ("bob", 50)}
    await viewer.ws.close()


async def test_subscribers_of_one_window_share_it_and_a_write_elsewhere_sends_nothing(
    client: AppClient, flow: Flow
) -> None:
    boards = Boards(client, flow.bearer)
    for i in range(5):
        await boards.write("high", {"userId": f"u{i}", "score": 100 * (5 - i)}, key=f"seed-{i}")
    window = {"channel": "ranks", "board": "high", "from": 1, "to": 3}
    first, second = await Viewer.open(client, window), await Viewer.open(client, window)
    windows = client.app[HUB].windows["high"]
    assert len(windows.windows) == 1 and windows.subscriptions() == 2
    # A new user below the window and a better score that stays below it change nothing shown.
    await boards.write("high", {"userId": "late", "score": 10}, key="late")
    await boards.write("high", {"userId": "u4", "score": 150}, key="u4")
    await settled(client)
    with pytest.raises(TimeoutError):
        await recv(first.ws, timeout=0.3)
    # u4 climbs into the window: ranks 2 and 3 change, rank 1 does not.
    await boards.write("high", {"userId": "u4", "score": 450}, key="u4-up")
    for viewer in (first, second):
        message = await recv_type(viewer.ws, "ranks_update")
        assert message["data"]["snapshot"] is False and message["data"]["total"] == 6
        assert [(e["rank"], e["userId"]) for e in message["data"]["entries"]] == [(2, "u4"), (3, "u1")]
        viewer.apply(message)
    await first.ws.close()
    await second.ws.close()
    await eventually(lambda: _gone(client))


async def _gone(client: AppClient) -> None:
    assert client.app[HUB].windows["high"].windows == {}


@pytest.mark.parametrize(
    ("subscription", "code"),
    [
        ({"channel": "ranks"}, "VALIDATION_ERROR"),
        ({"channel": "ranks", "from": 5}, "VALIDATION_ERROR"),
        ({"channel": "ranks", "from": 10, "to": 9}, "VALIDATION_ERROR"),
        ({"channel": "ranks", "from": 1, "to": 51}, "VALIDATION_ERROR"),
        ({"channel": "ranks", "from": 0, "to": 5}, "VALIDATION_ERROR"),
        ({"channel": "ranks", "from": "1", "to": 5}, "VALIDATION_ERROR"),
        ({"channel": "ranks", "from": 1.5, "to": 5}, "VALIDATION_ERROR"),
        ({"channel": "ranks", "from": 2**64, "to": 2**64 + 1}, "VALIDATION_ERROR"),
        ({"channel": "ranks", "from": 1, "to": 5, "board": "nope"}, "BOARD_NOT_FOUND"),
        ({"channel": "ranks", "from": 1, "to": 5, "maxRate": 0.05}, "VALIDATION_ERROR"),
        ({"channel": "ranks", "from": 1, "to": 5, "maxRate": 51}, "VALIDATION_ERROR"),
        ({"channel": "around"}, "UNAUTHORIZED"),
        ({"channel": "rank"}, "VALIDATION_ERROR"),
        ({"channel": "ränks", "from": 1, "to": 5}, "VALIDATION_ERROR"),
    ],
)
async def test_bad_window_subscriptions_are_errors_and_the_socket_goes_on(
    client: AppClient, subscription: dict[str, Any], code: str
) -> None:
    ws = await client.ws_connect(WS)
    await recv(ws)
    await ws.send_json({"type": "subscribe", **subscription})
    assert (await recv(ws))["error"]["code"] == code
    assert client.app[HUB].subscriptions() == 0
    await ws.send_json({"type": "ping"})
    assert (await recv(ws))["type"] == "pong"
    await ws.close()


async def test_an_around_radius_beyond_25_is_refused(client: AppClient) -> None:
    ws = await client.ws_connect(f"{WS}?token={token_for('alice')}")
    await recv(ws)
    await ws.send_json({"type": "subscribe", "channel": "around", "radius": 26})
    assert (await recv(ws))["error"]["code"] == "VALIDATION_ERROR"
    await ws.close()


async def test_windows_count_toward_the_ten_subscriptions(client: AppClient) -> None:
    ws = await client.ws_connect(f"{WS}?token={token_for('alice')}")
    await recv(ws)
    subscriptions: list[dict[str, Any]] = [
        *({"channel": "leaderboard", "board": b} for b in ("global", "weekly", "daily", "trial")),
        *({"channel": "ranks", "board": b, "from": 1, "to": 5} for b in ("global", "weekly", "daily")),
        *({"channel": "around", "board": b} for b in ("global", "weekly", "daily")),
    ]
    for subscription in subscriptions:
        await ws.send_json({"type": "subscribe", **subscription})
        assert (await recv(ws))["type"] == "subscribed"
        await recv(ws)
    await ws.send_json({"type": "subscribe", "channel": "ranks", "board": "trial", "from": 1, "to": 2})
    assert (await recv(ws))["error"]["code"] == "VALIDATION_ERROR"
    # Moving a window held is no new subscription.
    await ws.send_json({"type": "subscribe", "channel": "ranks", "board": "global", "from": 3, "to": 4})
    assert (await recv(ws))["type"] == "subscribed"
    assert (await recv(ws))["data"]["snapshot"] is True
    await ws.send_json({"type": "unsubscribe", "channel": "ranks", "board": "global"})
    assert await recv(ws) == {"type": "unsubscribed", "channel": "ranks", "board": "global"}
    assert client.app[HUB].subscriptions() == 9
    await ws.close()


async def test_seq_counts_each_subscription_and_a_paced_one_still_ends_on_the_latest(
    client: AppClient, flow: Flow
) -> None:
    ws = await client.ws_connect(WS)
    await recv(ws)
    await ws.send_json({"type": "subscribe", "channel": "leaderboard", "board": "high"})
    await recv(ws)
    fast = [await recv(ws)]
    slow_ws = await client.ws_connect(WS)
    await recv(slow_ws)
    await slow_ws.send_json({"type": "subscribe", "channel": "leaderboard", "board": "high", "maxRate": 2})
    await recv(slow_ws)
    slow = [await recv(slow_ws)]
    boards = Boards(client, flow.bearer)
    for n in range(30):
        await boards.write("high", {"userId": f"u{n}", "score": n + 1}, key=f"k{n}")
        await asyncio.sleep(0.02)
    await settled(client)
    top = await boards.top("high")

    async def caught_up(socket: Any, got: list[dict[str, Any]]) -> None:
        while [(e["userId"], e["score"]) for e in got[-1]["data"]["leaderboard"]] != top:
            got.append(await recv_type(socket, "leaderboard_update"))

    await asyncio.wait_for(caught_up(ws, fast), 5)
    await asyncio.wait_for(caught_up(slow_ws, slow), 5)
    for got in (fast, slow):
        assert [m["data"]["seq"] for m in got] == list(range(1, len(got) + 1))
    # At 2 a second over the ~1 s of writes the paced subscriber got a handful, the other many.
    assert len(slow) <= 5 < len(fast)
    await ws.close()
    await slow_ws.close()


async def test_a_new_period_starts_every_window_anew(client: AppClient, flow: Flow, clock: Clock) -> None:
    clock.now_ms = NEXT_MONDAY_MS - 1000
    await flow.award("alice", "q1")
    viewer = await Viewer.open(client, {"channel": "ranks", "board": "weekly", "from": 1, "to": 5})
    assert viewer.state == {1: ("alice", 100)}
    clock.now_ms = NEXT_MONDAY_MS
    client.app[HUB].resync()  # the boundary timer runs on the real clock: wake the windows now
    message = await recv_type(viewer.ws, "ranks_update")
    assert message["data"]["snapshot"] is True and message["data"]["period"] == "2026-W50"
    viewer.apply(message)
    assert viewer.state == {} and viewer.total == 0
    await flow.award("bob", "q1")
    message = await recv_type(viewer.ws, "ranks_update")
    viewer.apply(message)
    assert viewer.state == {1: ("bob", 100)} and message["data"]["period"] == "2026-W50"
    await viewer.ws.close()


async def test_the_period_end_alarm_alone_starts_a_window_nobody_wrote_to_anew(
    client: AppClient, flow: Flow, clock: Clock
) -> None:
    # No write reaches the board before the boundary: only the windows' own alarm can end the period.
    clock.short_of_monday()
    viewer = await Viewer.open(client, {"channel": "ranks", "board": "weekly", "from": 1, "to": 3})
    assert viewer.period == "2026-W49" and viewer.state == {}
    await clock.reach_monday()
    message = await recv(viewer.ws)
    assert message["type"] == "ranks_update", message
    viewer.apply(message)
    assert message["data"]["snapshot"] is True and viewer.period == "2026-W50"
    assert viewer.state == {} and viewer.total == 0
    # A write in the new period is one the window follows.
    await Boards(client, flow.bearer).write("weekly", {"userId": "bob", "score": 40})
    message = await recv(viewer.ws)
    assert message["type"] == "ranks_update", message
    viewer.apply(message)
    assert viewer.period == "2026-W50" and viewer.state == {1: ("bob", 40)} and viewer.total == 1
    await viewer.ws.close()


async def test_a_clock_stepped_back_across_the_boundary_keeps_the_window_on_the_period_shown(
    client: AppClient, flow: Flow, clock: Clock
) -> None:
    clock.now_ms = NEXT_MONDAY_MS + 1000
    boards = Boards(client, flow.bearer)
    await boards.write("weekly", {"userId": "alice", "score": 100}, key="a")
    await settled(client)
    window = {"channel": "ranks", "board": "weekly", "from": 1, "to": 3}
    first = await Viewer.open(client, window)
    assert first.period == "2026-W50" and first.state == {1: ("alice", 100)}
    clock.now_ms = NEXT_MONDAY_MS - 1000  # stepped back (a time sync) into the week that ended
    second = await Viewer.open(client, window)
    assert second.period == "2026-W50" and second.state == {1: ("alice", 100)}
    clock.now_ms = NEXT_MONDAY_MS + 2000
    await boards.write("weekly", {"userId": "bob", "score": 40}, key="b")
    # The first subscriber was not started anew on the older week: the next message is the change.
    message = await recv(first.ws)
    assert message["type"] == "ranks_update" and message["data"]["snapshot"] is False, message
    first.apply(message)
    assert first.period == "2026-W50" and first.state == {1: ("alice", 100), 2: ("bob", 40)}
    await first.ws.close()
    await second.ws.close()


async def test_a_subscription_after_the_clock_jumped_the_boundary_shows_the_new_period(
    client: AppClient, flow: Flow, clock: Clock
) -> None:
    boards = Boards(client, flow.bearer)
    await boards.write("weekly", {"userId": "alice", "score": 100}, key="a")
    await settled(client)
    window = {"channel": "ranks", "board": "weekly", "from": 1, "to": 3}
    first = await Viewer.open(client, window)
    assert first.period == "2026-W49" and first.state == {1: ("alice", 100)}
    await settled(client)
    # Past Monday at once: the alarm, set for Monday days away in real time, is not due.
    clock.now_ms = NEXT_MONDAY_MS + 1000
    second = await Viewer.open(client, window)
    assert second.period == "2026-W50" and second.state == {} and second.total == 0
    # The window's earlier subscriber is started anew as well.
    message = await recv_type(first.ws, "ranks_update")
    first.apply(message)
    assert message["data"]["snapshot"] is True and first.period == "2026-W50" and first.state == {}
    await boards.write("weekly", {"userId": "bob", "score": 40}, key="b")
    for viewer in (first, second):
        message = await recv_type(viewer.ws, "ranks_update")
        viewer.apply(message)
        assert viewer.period == "2026-W50" and viewer.state == {1: ("bob", 40)} and viewer.total == 1
        await viewer.ws.close()


class _Quiet:
    """A connection stub for windows driven without sockets: every message goes out."""

    def send_sequenced(self, message: object, seq: int) -> bool:
        return True


async def test_a_write_marks_exactly_the_windows_whose_view_it_may_change() -> None:
    # on_move looks only at the windows near the ranks a write moved (by the first rank each view
    # shows), those not read yet and the writer's own: it must mark what checking every one marks.
    rng = random.Random(3)
    board = Board("b", BoardSettings(operator="set"))
    ranking = MemoryRanking()
    windows = Windows(ranking, board, lambda: 0)
    where = board.where(board.current(0))
    seqs = itertools.count(1)

    async def write(user: str, score: int) -> tuple[int | None, int]:
        return await ranking.put(
            where, Standing(user_id=user, username=user, score=score, seq=next(seqs), updated_ms=0)
        )

    for i in range(300):
        await write(f"u{i}", rng.randrange(10_000))
    for n in range(80):  # around windows (some of users not on the board yet) and rank ranges
        if n % 2:
            key = WindowKey("around", user_id=f"u{rng.randrange(320)}", radius=rng.randrange(6))
        else:
            first = rng.randrange(1, 330)
            key = WindowKey("ranks", first, first + rng.randrange(50))
        await windows.subscribe(cast(Connection, _Quiet()), key, None)
    for n in range(400):  # `set` moves users up and down; users u300.. enter the board
        user, score = f"u{rng.randrange(340)}", rng.randrange(10_000)
        previous, rank = await write(user, score)
        change = EntryChange(where=where, previous_score=None, new_score=score, subscore=None, metadata=None, seq=0)
        low, high = (previous, rank) if previous is not None and previous < rank else (rank, previous)
        expected = set(windows._dirty) | {w for w in windows.windows.values() if w.covers(low, high, user)}
        windows.on_move(user, Move(change=change, previous_rank=previous, rank=rank))
        assert windows._dirty == expected, n
        if n % 7 == 0:
            await windows._round()  # refreshed: the around windows' spans move


class _SlowReads(MemoryRanking):
    """Reads that give the loop a turn, as Redis's do."""

    async def around(self, where: Any, user_id: str, radius: int) -> Any:
        await asyncio.sleep(0)
        return await super().around(where, user_id, radius)


async def test_two_subscribers_making_the_same_window_at_once_share_one() -> None:
    board = Board("b", BoardSettings())
    ranking = _SlowReads()
    windows = Windows(ranking, board, lambda: 0)
    key = WindowKey("around", user_id="u1", radius=2)
    first, second = cast(Connection, _Quiet()), cast(Connection, _Quiet())
    await asyncio.gather(windows.subscribe(first, key, None), windows.subscribe(second, key, None))
    assert list(windows.windows) == [key]
    assert set(windows.windows[key].subscribers) == {first, second}
