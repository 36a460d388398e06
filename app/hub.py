"""The hub: live connections, subscriptions, and the coalesced broadcast of the top 10."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
import typing
from typing import cast

from aiohttp import web

from .board import Board
from .clock import iso, now_ms
from .events import AwardEvent
from .leaderboard import Standing
from .messages import (
    LeaderboardUpdate,
    LiveBoard,
    LiveEntry,
    RankChange,
    RankMove,
    ScoreChange,
    ScoreUpdate,
    ServerMessage,
    encode,
    text_frame,
)
from .slots import ConnectionSlots

log = logging.getLogger(__name__)

TOP = 10
WAVE_RETRY_SECONDS = 0.25
WAVE_CHUNK = 256  # subscribers written between yields, so awards keep flowing during a big wave

CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_MANY = 4429


class Connection:
    """One WebSocket. Writes never wait: frames go straight to the socket's buffer, and a
    client whose buffer grows past the limit is closed instead of being waited for."""

    __slots__ = ("_expiry", "hub", "id", "subscribed", "transport", "user_id", "ws")

    def __init__(self, hub: Hub, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None) -> None:
        self.hub = hub
        self.ws = ws
        self.transport = transport
        self.id = secrets.token_hex(8)
        self.user_id: str | None = None
        self.subscribed = False
        self._expiry: asyncio.TimerHandle | None = None

    def send_frame(self, frame: bytes) -> bool:
        """Queue a pre-built frame; False if the connection is gone or was too far behind."""
        # Duck-typed: uvloop's transports do not derive from asyncio.WriteTransport.
        transport = cast(asyncio.WriteTransport | None, self.transport)
        if transport is None or transport.is_closing() or self.ws.closed:
            return False
        if transport.get_write_buffer_size() > self.hub.max_buffer:
            self.hub.drop(self, CLOSE_TRY_AGAIN_LATER, "client too slow")
            return False
        transport.write(frame)
        return True

    def send(self, message: ServerMessage) -> bool:
        """Encode and queue one message."""
        return self.send_frame(text_frame(encode(message)))

    def expire_at(self, timestamp: float) -> None:
        """Close the connection when its JWT expires."""
        if self._expiry is not None:
            self._expiry.cancel()
        delay = max(0.0, timestamp - time.time())
        self._expiry = asyncio.get_running_loop().call_later(
            delay, self.hub.drop, self, CLOSE_UNAUTHORIZED, "token expired"
        )

    def forget(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None


class Hub:
    """Owns the connections. One `leaderboard_update` per wave, serialised once, the same bytes
    to every subscriber; changes that arrive while a wave goes out merge into the next."""

    def __init__(self, board: Board, slots: ConnectionSlots, *, max_buffer: int) -> None:
        self.board = board
        self.slots = slots
        self.max_buffer = max_buffer
        self.connections: set[Connection] = set()
        self.subscribers: dict[Connection, None] = {}  # ordered set
        self.by_user: dict[str, set[Connection]] = {}
        self._dirty = asyncio.Event()
        self._bases: dict[str, int] = {}  # score before the first award since the last wave
        self._last_top: list[tuple[str, str, int]] = []
        self._force = False  # send the next wave even if the top 10 looks unchanged
        self._tasks: set[asyncio.Future[object]] = set()
        self.waves = 0

    # -- connections

    def connect(self, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None) -> Connection:
        """Register a new connection."""
        conn = Connection(self, ws, transport)
        self.connections.add(conn)
        self._cap_socket_buffer(transport)
        return conn

    def _cap_socket_buffer(self, transport: asyncio.BaseTransport | None) -> None:
        # The kernel would otherwise grow a stalled socket's send buffer to megabytes, hiding a
        # client that stopped reading; capped, "behind" means behind by about max_buffer.
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.max_buffer)

    async def bind(self, conn: Connection, user_id: str) -> bool:
        """Attach a user; False when that user already has the allowed number of connections."""
        if not await self.slots.acquire(user_id, conn.id):
            return False
        if conn not in self.connections:  # closed while the slot was being taken
            await self.slots.release(user_id, conn.id)
            return False
        self.by_user.setdefault(user_id, set()).add(conn)
        conn.user_id = user_id
        return True

    def _background(self, awaitable: asyncio.Future[object] | typing.Coroutine[object, object, object]) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("hub background task failed: %r", exc)

    def disconnect(self, conn: Connection) -> None:
        """Forget a connection (idempotent)."""
        conn.forget()
        self.connections.discard(conn)
        self.subscribers.pop(conn, None)
        if conn.user_id is not None:
            owned = self.by_user.get(conn.user_id)
            if owned is not None and conn in owned:
                owned.discard(conn)
                if not owned:
                    del self.by_user[conn.user_id]
                self._background(self.slots.release(conn.user_id, conn.id))

    def drop(self, conn: Connection, code: int, reason: str) -> None:
        """Stop sending to a connection now and close it in the background."""
        self.disconnect(conn)
        if not conn.ws.closed:
            self._background(conn.ws.close(code=code, message=reason.encode()))

    async def subscribe(self, conn: Connection) -> None:
        """Add to the leaderboard channel and send the current state at once."""
        top, updated_ms = await self.board.top(TOP)
        self.subscribers[conn] = None
        conn.subscribed = True
        conn.send_frame(self._frame(top, updated_ms, bases={}))

    def unsubscribe(self, conn: Connection) -> None:
        self.subscribers.pop(conn, None)
        conn.subscribed = False

    async def close_all(self, code: int = CLOSE_GOING_AWAY) -> None:
        """Close every socket (graceful shutdown)."""
        for conn in list(self.connections):
            self.drop(conn, code, "server shutting down")
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- awards

    def resync(self) -> None:
        """Events may have been missed: send the current top 10 even if it looks unchanged."""
        self._force = True
        self._dirty.set()

    def on_award(self, event: AwardEvent) -> None:
        """Score and rank messages to the users concerned now; the top 10 in the next wave."""
        award = event.award
        self._bases.setdefault(award.user_id, award.previous_score)
        if event.rank <= TOP:
            self._dirty.set()
        if not self.by_user:
            return
        self._to_user(
            award.user_id,
            ScoreUpdate(
                data=ScoreChange(
                    user_id=award.user_id,
                    previous_score=award.previous_score,
                    new_score=award.new_score,
                    score_increment=award.score_increment,
                    new_rank=event.rank,
                    previous_rank=event.previous_rank,
                )
            ),
        )
        if event.previous_rank is not None and event.previous_rank != event.rank:
            self._rank_change(award.user_id, event.previous_rank, event.rank, award.new_score)
        if event.previous_rank is None or event.previous_rank > event.rank:
            self._background(self._tell_overtaken(award.user_id, event.rank, event.previous_rank))

    async def _tell_overtaken(self, winner: str, rank: int, previous: int | None) -> None:
        # Everyone the winner passed moved down one place: now at ranks rank+1 .. previous
        # (to the end of the board on a first award). Walk whichever is smaller: that rank
        # range, or the users connected here.
        last = previous if previous is not None else await self.board.size()
        if last <= rank or not self.by_user:
            return
        if last - rank <= len(self.by_user):
            moved = await self.board.ranked(rank + 1, last)
        else:
            found = await self.board.ranks(list(self.by_user))
            moved = [(r, user, score) for user, (r, score) in found.items() if rank < r <= last]
        for r, user_id, score in moved:
            if user_id != winner and user_id in self.by_user:
                self._rank_change(user_id, r - 1, r, score)

    def _rank_change(self, user_id: str, previous: int, rank: int, score: int) -> None:
        self._to_user(
            user_id, RankChange(data=RankMove(user_id=user_id, previous_rank=previous, new_rank=rank, score=score))
        )

    def _to_user(self, user_id: str, message: ServerMessage) -> None:
        owned = self.by_user.get(user_id)
        if owned:
            frame = text_frame(encode(message))
            for conn in list(owned):
                conn.send_frame(frame)

    # -- waves

    def _frame(self, top: list[tuple[int, Standing]], updated_ms: int, *, bases: dict[str, int]) -> bytes:
        entries = [
            LiveEntry(
                rank=rank,
                user_id=s.user_id,
                username=s.username,
                score=s.score,
                change=f"{s.score - bases.get(s.user_id, s.score):+d}",
            )
            for rank, s in top
        ]
        board = LiveBoard(leaderboard=entries, updated_at=iso(updated_ms or now_ms()))
        return text_frame(encode(LeaderboardUpdate(data=board)))

    async def next_wave(self) -> bytes | None:
        """The frame of the next `leaderboard_update`, or None when the top 10 did not change."""
        bases, self._bases = self._bases, {}
        top, updated_ms = await self.board.top(TOP)
        shown = [(s.user_id, s.username, s.score) for _, s in top]
        # Boards only grow (no user is ever removed), so a shorter top is a board still being
        # rebuilt after a Redis loss: wait for the rebuild, which asks for a resync when done.
        if (shown == self._last_top and not self._force) or len(shown) < len(self._last_top):
            self._bases = {**self._bases, **bases}  # nothing went out: the earlier bases still count
            return None
        frame = self._frame(top, updated_ms, bases=bases)
        self._last_top = shown
        self._force = False
        return frame

    async def run(self) -> None:
        """Send waves for as long as the app runs."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                frame = await self.next_wave()
            except Exception:  # the board is unreachable: try again shortly, the last state must go out
                log.warning("leaderboard wave postponed", exc_info=True)
                await asyncio.sleep(WAVE_RETRY_SECONDS)
                self._dirty.set()
                continue
            if frame is None:
                continue
            self.waves += 1
            for i, conn in enumerate(list(self.subscribers)):
                if conn in self.subscribers:
                    conn.send_frame(frame)
                if i % WAVE_CHUNK == WAVE_CHUNK - 1:
                    await asyncio.sleep(0)
