"""The hub's sweep in isolation: which board version each subscriber gets, and `change` in it.

The sockets are recording stand-ins (the hub only writes finished frames to a transport); the
board is the real embedded one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, cast

import pytest
from aiohttp import web

from app import hub as hub_module
from app.board import MemoryBoard
from app.events import AwardEvent
from app.hub import Hub
from app.leaderboard import Standing
from app.slots import LocalSlots
from app.storage import Award


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

    def __init__(self, board: MemoryBoard, hub: Hub) -> None:
        self.board, self.hub = board, hub
        self.seq = 0

    def award(self, user: str, points: int) -> None:
        index = self.board.index
        before = index.get(user)
        previous = before.score if before is not None else 0
        self.seq += 1
        standing = Standing(user_id=user, username=user.upper(), score=previous + points, seq=self.seq, updated_ms=1)
        previous_rank, rank = index.put(standing)
        award = Award(
            user_id=user,
            username=user.upper(),
            action_type="T",
            action_id=f"a{self.seq}",
            previous_score=previous,
            new_score=previous + points,
            score_increment=points,
            seq=self.seq,
            awarded_ms=1,
        )
        self.hub.on_award(AwardEvent(award=award, previous_rank=previous_rank, rank=rank))


def changes(message: dict[str, Any]) -> dict[str, str]:
    assert message["type"] == "leaderboard_update"
    return {entry["userId"]: entry["change"] for entry in message["data"]["leaderboard"]}


def board_of(message: dict[str, Any]) -> list[tuple[int, str, int]]:
    return [(e["rank"], e["userId"], e["score"]) for e in message["data"]["leaderboard"]]


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(3):
        while not predicate():
            await asyncio.sleep(0.005)


@pytest.mark.parametrize("gap", [hub_module.MIN_VERSION_GAP, 0.0])
async def test_subscriber_that_skips_a_version_gets_change_since_the_one_it_had(
    gap: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # gap 0: every sweep that made a version mid-pass counts as long, so it ends after its pass
    # and the first part is brought up to date by the next sweep, after the rest.
    monkeypatch.setattr(hub_module, "MIN_VERSION_GAP", gap)
    board = MemoryBoard()
    hub = Hub(board, LocalSlots(3), max_buffer=1 << 20)
    players = Players(board, hub)
    players.award("alice", 100)
    players.award("bob", 50)
    count = hub_module.WAVE_CHUNK + 20  # two chunks: the sweep yields once in between
    sockets = [Socket() for _ in range(count)]
    for sock in sockets:
        ws = cast(web.WebSocketResponse, sock)
        await hub.subscribe(hub.connect(ws, cast(Any, sock)))
    assert all(changes(s.messages[0]) == {"alice": "+0", "bob": "+0"} for s in sockets)

    runner = asyncio.create_task(hub.run())
    try:
        # A new version reaches the first chunk; while the sweep yields, alice scores again, so
        # the second chunk skips that version and the first gets a second pass.
        sockets[hub_module.WAVE_CHUNK - 1].on_write = lambda: players.award("alice", 7)
        players.award("alice", 5)
        await until(lambda: all(len(s.messages) == 3 for s in sockets[: hub_module.WAVE_CHUNK]))
        await until(lambda: all(len(s.messages) == 2 for s in sockets[hub_module.WAVE_CHUNK :]))
        for sock in sockets[: hub_module.WAVE_CHUNK]:
            assert [changes(m)["alice"] for m in sock.messages[1:]] == ["+5", "+7"]
        for sock in sockets[hub_module.WAVE_CHUNK :]:
            assert changes(sock.messages[1]) == {"alice": "+12", "bob": "+0"}
            assert board_of(sock.messages[1]) == board_of(sockets[0].messages[2])  # the same version

        # The next change counts from the version everyone has now.
        players.award("bob", 60)
        await until(
            lambda: all(len(s.messages) == (4 if i < hub_module.WAVE_CHUNK else 3) for i, s in enumerate(sockets))
        )
        assert all(changes(s.messages[-1]) == {"bob": "+60", "alice": "+0"} for s in sockets)
        assert board_of(sockets[0].messages[-1]) == [(1, "alice", 112), (2, "bob", 110)]
    finally:
        hub.stop()
        await asyncio.wait_for(runner, 3)


async def test_steady_load_keeps_the_per_version_state_bounded() -> None:
    # Awards keep landing mid-sweep, so one sweep runs pass after pass; what it keeps per
    # board version (each user's score before the version) must not pile up meanwhile.
    board = MemoryBoard()
    hub = Hub(board, LocalSlots(3), max_buffer=1 << 20)
    players = Players(board, hub)
    players.award("alice", 100)
    sockets = [Socket() for _ in range(hub_module.WAVE_CHUNK + 20)]
    for sock in sockets:
        await hub.subscribe(hub.connect(cast(web.WebSocketResponse, sock), cast(Any, sock)))
    kept: list[int] = []
    awards = 0

    def award_mid_sweep() -> None:
        nonlocal awards
        awards += 1
        kept.append(len(hub._since))
        players.award("alice", 1)
        if awards < 50:
            sockets[hub_module.WAVE_CHUNK - 1].on_write = award_mid_sweep

    sockets[hub_module.WAVE_CHUNK - 1].on_write = award_mid_sweep
    runner = asyncio.create_task(hub.run())
    try:
        players.award("alice", 1)
        await until(lambda: awards == 50)
        await until(lambda: all(board_of(s.messages[-1]) == [(1, "alice", 151)] for s in sockets))
    finally:
        hub.stop()
        await asyncio.wait_for(runner, 3)
    assert max(kept) <= 3, kept  # was one more per pass: 50 by the end


async def test_a_version_made_by_a_subscribe_mid_sweep_reaches_everyone() -> None:
    # subscribe() makes the version itself when changes are waiting; the part of the sweep
    # already visited must get it too, not wait for the next change of the top.
    board = MemoryBoard()
    hub = Hub(board, LocalSlots(3), max_buffer=1 << 20)
    players = Players(board, hub)
    players.award("alice", 100)
    sockets = [Socket() for _ in range(hub_module.WAVE_CHUNK + 20)]
    for sock in sockets:
        await hub.subscribe(hub.connect(cast(web.WebSocketResponse, sock), cast(Any, sock)))
    late = Socket()
    joining: list[asyncio.Task[None]] = []

    def award_and_subscribe() -> None:
        players.award("alice", 7)
        conn = hub.connect(cast(web.WebSocketResponse, late), cast(Any, late))
        joining.append(asyncio.create_task(hub.subscribe(conn)))

    sockets[hub_module.WAVE_CHUNK - 1].on_write = award_and_subscribe
    runner = asyncio.create_task(hub.run())
    try:
        players.award("alice", 5)
        await until(lambda: all(board_of(s.messages[-1]) == [(1, "alice", 112)] for s in [*sockets, late]))
        assert [changes(m)["alice"] for m in sockets[0].messages[1:]] == ["+5", "+7"]
        await joining[0]
    finally:
        hub.stop()
        await asyncio.wait_for(runner, 3)
