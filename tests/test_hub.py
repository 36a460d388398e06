"""The hub's sweep in isolation: which board version each subscriber gets, and `change` in it.

The sockets are recording stand-ins (the hub only writes finished frames to a transport); the
board is the real embedded one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest
from aiohttp import web

from app.boards.catalog import Catalog
from app.limits.local import LocalSlots
from app.live import waves as waves_module
from app.live.hub import Hub
from app.live.messages import Connected
from app.ranking.memory import MemoryRanking
from app.records import AwardEvent, BoardPeriod, EntryChange, Move, Position, Standing
from app.settings import BoardSettings

GLOBAL = BoardPeriod(board="global", period="all")


class Socket:
    """Records each WebSocket text frame's JSON; `on_write` runs inside the n-th write."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.closed = False  # read as the WebSocketResponse's `closed`
        self.on_write: Callable[[], None] | None = None

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> None:
        return None

    def write(self, frame: bytes) -> None:
        size = frame[1] & 0x7F
        payload = frame[2:] if size < 126 else frame[4:]
        self.messages.append(json.loads(payload))
        if self.on_write is not None:
            hook, self.on_write = self.on_write, None
            hook()


class Players:
    """Awards on the real embedded board, told to the hub as the service does after commit."""

    def __init__(self, board: MemoryRanking, hub: Hub) -> None:
        self.board, self.hub = board, hub
        self.seq = 0

    def award(self, user: str, points: int) -> None:
        """Add points to a user on the board and tell the hub."""
        index = self.board.index(GLOBAL)
        before = index.get(user)
        previous = before.score if before is not None else None
        self.seq += 1
        new = (previous or 0) + points
        standing = Standing(user_id=user, username=user.upper(), score=new, seq=self.seq, updated_ms=1)
        previous_rank, rank = index.put(standing)
        change = EntryChange(
            where=GLOBAL, previous_score=previous, new_score=new, subscore=None, metadata=None, seq=self.seq
        )
        move = Move(change=change, previous_rank=previous_rank, rank=rank)
        self.hub.on_award(AwardEvent(user_id=user, username=user.upper(), at_ms=1, moves=[move]))


def changes(message: dict[str, Any]) -> dict[str, str]:
    """Each user's `change` in a leaderboard_update."""
    assert message["type"] == "leaderboard_update"
    return {entry["userId"]: entry["change"] for entry in message["data"]["leaderboard"]}


def board_of(message: dict[str, Any]) -> list[tuple[int, str, int]]:
    """The (rank, user, score) rows of a leaderboard_update."""
    return [(e["rank"], e["userId"], e["score"]) for e in message["data"]["leaderboard"]]


async def until(predicate: Callable[[], bool]) -> None:
    """Wait until `predicate` holds (TimeoutError after 3 s)."""
    async with asyncio.timeout(3):
        while not predicate():
            await asyncio.sleep(0.005)


async def join(hub: Hub, sock: Socket) -> None:
    """Connect and subscribe a recording socket."""
    await hub.subscribe(hub.connect(cast(web.WebSocketResponse, sock), cast(Any, sock)), "global")


def a_hub(now_ms: int = 1) -> tuple[MemoryRanking, Hub, Players]:
    """A hub over the embedded board `global` whose clock stands at `now_ms`, and the players who
    award on it (each award's time 1 ms)."""
    board = MemoryRanking()
    catalog = Catalog("global", {"global": BoardSettings()})
    hub = Hub(board, LocalSlots(3), catalog, lambda: now_ms, max_buffer=1 << 20)
    return board, hub, Players(board, hub)


async def two_chunks(*scores: tuple[str, int], now_ms: int = 1) -> tuple[MemoryRanking, Hub, Players, list[Socket]]:
    """A hub over the embedded board with these first awards and enough subscribers for two
    chunks of a sweep (it yields once in between)."""
    board, hub, players = a_hub(now_ms)
    for user, points in scores:
        players.award(user, points)
    sockets = [Socket() for _ in range(waves_module.WAVE_CHUNK + 20)]
    for sock in sockets:
        await join(hub, sock)
    return board, hub, players, sockets


@contextlib.asynccontextmanager
async def running(hub: Hub) -> AsyncIterator[None]:
    """Run the hub's waves for the block."""
    runner = asyncio.create_task(hub.run())
    try:
        yield
    finally:
        hub.stop()
        await asyncio.wait_for(runner, 3)


@pytest.mark.parametrize("gap", [waves_module.MIN_VERSION_GAP, 0.0])
async def test_subscriber_that_skips_a_version_gets_change_since_the_one_it_had(
    gap: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # gap 0: every sweep that made a version mid-pass counts as long, so it ends after its pass
    # and the first part is brought up to date by the next sweep, after the rest.
    monkeypatch.setattr(waves_module, "MIN_VERSION_GAP", gap)
    _, hub, players, sockets = await two_chunks(("alice", 100), ("bob", 50))
    first, second = sockets[: waves_module.WAVE_CHUNK], sockets[waves_module.WAVE_CHUNK :]
    assert all(changes(s.messages[0]) == {"alice": "+0", "bob": "+0"} for s in sockets)

    async with running(hub):
        # A new version reaches the first chunk; while the sweep yields, alice scores again, so
        # the second chunk skips that version and the first gets a second pass.
        first[-1].on_write = lambda: players.award("alice", 7)
        players.award("alice", 5)
        await until(lambda: all(len(s.messages) == 3 for s in first))
        await until(lambda: all(len(s.messages) == 2 for s in second))
        for sock in first:
            assert [changes(m)["alice"] for m in sock.messages[1:]] == ["+5", "+7"]
        for sock in second:
            assert changes(sock.messages[1]) == {"alice": "+12", "bob": "+0"}
            assert board_of(sock.messages[1]) == board_of(first[0].messages[2])  # the same version

        # The next change counts from the version everyone has now.
        players.award("bob", 60)
        await until(lambda: all(len(s.messages) == 4 for s in first) and all(len(s.messages) == 3 for s in second))
        assert all(changes(s.messages[-1]) == {"bob": "+60", "alice": "+0"} for s in sockets)
        assert board_of(sockets[0].messages[-1]) == [(1, "alice", 112), (2, "bob", 110)]


async def test_steady_load_keeps_the_per_version_state_bounded() -> None:
    # Awards keep landing mid-sweep, so one sweep runs pass after pass; what it keeps per
    # board version (each user's score before the version) must not pile up meanwhile.
    _, hub, players, sockets = await two_chunks(("alice", 100))
    kept: list[int] = []
    awards = 0

    def award_mid_sweep() -> None:
        nonlocal awards
        awards += 1
        kept.append(hub.waves["global"].kept_versions)
        players.award("alice", 1)
        if awards < 50:
            sockets[waves_module.WAVE_CHUNK - 1].on_write = award_mid_sweep

    sockets[waves_module.WAVE_CHUNK - 1].on_write = award_mid_sweep
    async with running(hub):
        players.award("alice", 1)
        await until(lambda: awards == 50)
        await until(lambda: all(board_of(s.messages[-1]) == [(1, "alice", 151)] for s in sockets))
    assert max(kept) <= 3, kept  # was one more per pass: 50 by the end


async def test_a_version_made_by_a_subscribe_mid_sweep_reaches_everyone() -> None:
    # subscribe() makes the version itself when changes are waiting; the part of the sweep
    # already visited must get it too, not wait for the next change of the top.
    _, hub, players, sockets = await two_chunks(("alice", 100))
    late = Socket()
    joining: list[asyncio.Task[None]] = []

    def award_and_subscribe() -> None:
        players.award("alice", 7)
        joining.append(asyncio.create_task(join(hub, late)))

    sockets[waves_module.WAVE_CHUNK - 1].on_write = award_and_subscribe
    async with running(hub):
        players.award("alice", 5)
        await until(lambda: all(board_of(s.messages[-1]) == [(1, "alice", 112)] for s in [*sockets, late]))
        assert [changes(m)["alice"] for m in sockets[0].messages[1:]] == ["+5", "+7"]
        await joining[0]


async def test_the_count_alone_makes_a_version_at_most_every_count_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waves_module, "COUNT_GAP", 0.1)
    scores = [(f"u{i:02d}", 100 - i) for i in range(10)]
    _, hub, players, sockets = await two_chunks(*scores)
    sock = sockets[0]
    assert sock.messages[0]["data"]["total"] == 10
    async with running(hub):
        # Two newcomers below the top 10: one version carries both, once the gap has passed.
        players.award("late", 1)
        players.award("later", 1)
        await until(lambda: len(sock.messages) == 2)
        assert sock.messages[1]["data"]["total"] == 12
        assert board_of(sock.messages[1]) == board_of(sock.messages[0])
        assert set(changes(sock.messages[1]).values()) == {"+0"}
        # A move below the top by someone already there changes neither the top nor the count.
        players.award("late", 2)
        await asyncio.sleep(0.3)
        assert len(sock.messages) == 2
        # A change of the top goes at once (not after the gap), with the count as it is then.
        monkeypatch.setattr(waves_module, "COUNT_GAP", 60)
        players.award("newest", 500)
        await until(lambda: len(sock.messages) == 3)
        assert sock.messages[2]["data"]["total"] == 13 and board_of(sock.messages[2])[0] == (1, "newest", 500)


async def test_an_award_read_before_its_event_arrives_counts_once() -> None:
    # In the Redis modes another process's award is on the board before its event comes back over
    # Pub/Sub: a version may show it first, and the event arrive after.
    board, hub, players, sockets = await two_chunks(("alice", 100), ("bob", 50))
    index = board.index(GLOBAL)
    async with running(hub):
        index.put(Standing(user_id="alice", username="ALICE", score=105, seq=101, updated_ms=1))  # no event yet
        players.award("bob", 10)
        await until(lambda: all(len(s.messages) == 2 for s in sockets))
        assert all(changes(s.messages[1]) == {"alice": "+5", "bob": "+10"} for s in sockets)
        change = EntryChange(where=GLOBAL, previous_score=100, new_score=105, subscore=None, metadata=None, seq=101)
        hub.on_award(
            AwardEvent(user_id="alice", username="ALICE", at_ms=1, moves=[Move(change=change, previous_rank=1, rank=1)])
        )
        players.award("bob", 1)
        await until(lambda: all(len(s.messages) == 3 for s in sockets))
        assert all(changes(s.messages[2]) == {"alice": "+0", "bob": "+1"} for s in sockets)


async def test_a_users_own_messages_come_after_their_greeting(monkeypatch: pytest.MonkeyPatch) -> None:
    _, hub, players = a_hub()
    players.award("alice", 10)
    sock = Socket()
    conn = hub.connect(cast(web.WebSocketResponse, sock), cast(Any, sock))
    watch = hub.notices.watch

    async def award_meanwhile(user_id: str) -> None:
        players.award("alice", 5)  # while the binding looks the user up
        await watch(user_id)

    monkeypatch.setattr(hub.notices, "watch", award_meanwhile)
    assert await hub.bind(conn, "alice", Connected(timestamp="t", client_id=conn.id, user_id="alice"))
    assert [m["type"] for m in sock.messages] == ["connected", "score_update"]


async def test_a_subscription_replaced_mid_sweep_sends_nothing_after_its_successor_began(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    board, hub, players, sockets = await two_chunks(("alice", 100))
    sock = Socket()  # the last subscriber: in the sweep's second chunk
    conn = hub.connect(cast(web.WebSocketResponse, sock), cast(Any, sock))
    await hub.subscribe(conn, "global")
    page = board.page

    async def read_in_a_while(*args: Any, **kwargs: Any) -> Any:  # as Redis's read does, it yields
        await asyncio.sleep(0)
        return await page(*args, **kwargs)

    monkeypatch.setattr(board, "page", read_in_a_while)
    again: list[asyncio.Task[None]] = []

    def resubscribe() -> None:  # mid-sweep, as the session does it: `subscribed`, then the subscribe
        sock.messages.append({"type": "subscribed"})
        again.append(asyncio.get_running_loop().create_task(hub.subscribe(conn, "global")))

    async with running(hub):
        sockets[0].on_write = resubscribe
        players.award("alice", 5)
        await until(lambda: bool(again) and again[0].done())
        await asyncio.sleep(0.05)  # the sweep's second chunk, had it anything left to send
    after = sock.messages[sock.messages.index({"type": "subscribed"}) + 1 :]
    assert [m["data"]["seq"] for m in after] == [1], after  # the new subscription's snapshot alone


async def test_a_user_passed_while_their_boards_are_looked_up_is_told(monkeypatch: pytest.MonkeyPatch) -> None:
    board, hub, players = a_hub()
    players.award("alice", 10)
    players.award("bob", 5)
    sock = Socket()
    conn = hub.connect(cast(web.WebSocketResponse, sock), cast(Any, sock))
    position = board.position

    async def passed_meanwhile(where: BoardPeriod, user_id: str) -> Position | None:
        players.award("bob", 10)  # bob passes alice after her greeting, before her lookup ends
        await hub.finished()  # and who he passed is worked out meanwhile
        return await position(where, user_id)

    monkeypatch.setattr(board, "position", passed_meanwhile)
    assert await hub.bind(conn, "alice", Connected(timestamp="t", client_id=conn.id, user_id="alice"))
    await hub.finished()
    assert [m["type"] for m in sock.messages] == ["connected", "rank_change"]
    assert sock.messages[1]["data"]["newRank"] == 2


async def test_a_user_found_on_no_board_is_no_longer_watched() -> None:
    _, hub, _ = a_hub()
    sock = Socket()
    conn = hub.connect(cast(web.WebSocketResponse, sock), cast(Any, sock))
    assert await hub.bind(conn, "carol", Connected(timestamp="t", client_id=conn.id, user_id="carol"))
    assert hub.notices.watched_users() == frozenset()


def carol_event(seq: int = 101) -> AwardEvent:
    """The event of carol's first award (200 points, rank 1), as another process's comes late."""
    change = EntryChange(where=GLOBAL, previous_score=None, new_score=200, subscore=None, metadata=None, seq=seq)
    return AwardEvent(
        user_id="carol", username="CAROL", at_ms=1, moves=[Move(change=change, previous_rank=None, rank=1)]
    )


CAROL = Standing(user_id="carol", username="CAROL", score=200, seq=101, updated_ms=1)  # written at 1 ms


async def test_a_user_read_into_the_top_before_their_event_counts_from_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # In the Redis modes another process's award can bring a user into the top before its event
    # comes back over Pub/Sub: the version waits for the event rather than show them at "+0".
    monkeypatch.setattr(waves_module, "ENTRANT_WAIT", 30.0)  # only the event ends this wait
    board, hub, players, sockets = await two_chunks(("alice", 100), ("bob", 50))
    async with running(hub):
        board.index(GLOBAL).put(CAROL)  # no event yet
        players.award("bob", 10)
        await asyncio.sleep(0.05)
        assert all(len(s.messages) == 1 for s in sockets)  # only the snapshot: the version waits
        hub.on_award(carol_event())
        await until(lambda: all(len(s.messages) == 2 for s in sockets))
        assert all(changes(s.messages[1]) == {"carol": "+200", "alice": "+0", "bob": "+10"} for s in sockets)


async def test_a_user_written_lately_whose_event_never_comes_is_shown_after_the_wait() -> None:
    board, hub, players, sockets = await two_chunks(("alice", 100), ("bob", 50))
    async with running(hub):
        board.index(GLOBAL).put(CAROL)  # never an event
        players.award("bob", 10)
        await until(lambda: all(len(s.messages) == 2 for s in sockets))
        assert all(changes(s.messages[1]) == {"carol": "+0", "alice": "+0", "bob": "+10"} for s in sockets)
        # The next version does not wait for carol again: she is shown now.
        players.award("bob", 1)
        await until(lambda: all(len(s.messages) == 3 for s in sockets))
        assert all(changes(s.messages[2]) == {"carol": "+0", "alice": "+0", "bob": "+1"} for s in sockets)


async def test_a_user_who_entered_because_others_left_is_waited_for_by_no_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Written long before the last version (an entry an operator's removal of others brought up):
    # no event is coming, and a version that waited would hold everyone else's changes back.
    monkeypatch.setattr(waves_module, "ENTRANT_WAIT", 30.0)
    board, hub, players, sockets = await two_chunks(("alice", 100), ("bob", 50), now_ms=60_000)
    async with running(hub):
        board.index(GLOBAL).put(CAROL)
        players.award("bob", 10)
        await until(lambda: all(len(s.messages) == 2 for s in sockets))  # not after 30 s
        assert all(changes(s.messages[1]) == {"carol": "+0", "alice": "+0", "bob": "+10"} for s in sockets)


async def test_a_subscriber_gets_the_board_as_read_without_waiting_for_entrants(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A viewer who connects after an award was answered sees it in the first board, event or not.
    monkeypatch.setattr(waves_module, "ENTRANT_WAIT", 30.0)
    board, hub, players, _ = await two_chunks(("alice", 100))
    async with running(hub):
        board.index(GLOBAL).put(CAROL)
        players.award("alice", 1)
        late = Socket()
        await join(hub, late)
        assert board_of(late.messages[-1]) == [(1, "carol", 200), (2, "alice", 101)]
