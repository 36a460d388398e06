"""The hub: live connections, subscriptions, and the coalesced broadcast of the top 10."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from typing import cast

from aiohttp import web

from ..clock import iso, now_ms
from ..errors import ServiceUnavailable
from ..limits import ConnectionSlots
from ..ranking import TOP_SIZE, Ranking, last_change
from ..records import AwardEvent, Standing
from ..tasks import Errands, stop_if_cancelled
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

log = logging.getLogger(__name__)

WAVE_RETRY_SECONDS = 0.25
WAVE_CHUNK = 256  # subscribers written between yields, so awards keep flowing during a big wave
# A sweep to 1,000 clients takes ~5 ms: back to back they made ~90 versions a second, every
# client parsing each, and the box saturated (p99 154 ms). 20 ms apart at most 50 a second.
MIN_VERSION_GAP = 0.02
SNAPSHOT = -1  # "version" of a subscriber that has nothing yet: its first board shows no change

CLOSE_WAIT_SECONDS = 5.0  # a close handshake (drain, close frame, answer) longer than this is cut short
CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_MANY = 4429


class Connection:
    """One WebSocket. Writes never wait: frames go straight to the socket's buffer, and a
    client whose buffer grows past the limit is closed instead of being waited for."""

    __slots__ = ("_expiry", "heard", "hub", "id", "pinged", "subscribed", "transport", "user_id", "version", "ws")

    def __init__(self, hub: Hub, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None) -> None:
        self.hub = hub
        self.ws = ws
        self.transport = transport
        self.id = secrets.token_hex(8)
        self.user_id: str | None = None
        self.subscribed = False
        self.version = SNAPSHOT  # the board version this subscriber was last sent
        self.heard = False  # a frame arrived since the last keepalive sweep
        self.pinged = False  # the last keepalive sweep pinged it
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

    def abort(self) -> None:
        """Close the socket at once, dropping whatever is still queued for it."""
        # Duck-typed: uvloop's transports do not derive from asyncio.Transport.
        transport = cast(asyncio.Transport | None, self.transport)
        if transport is not None:
            transport.abort()

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
    """Owns the connections and sends the top 10 to every subscriber as a sweep: each change of
    the top makes a new board version; the sweep writes the newest version to each subscriber
    that does not have it yet. A version made while a sweep is under way goes to the rest of that
    sweep at once, and a second pass brings the first part up to date: a change waits about one
    wave (sweeps start at most every MIN_VERSION_GAP), and bursts coalesce (latest state wins).
    A sweep longer than that gap ends after its pass and, before the next, the hub rests as long
    as other work needed the loop during it, so under steady load the awards still get it.
    `change` is relative to the version each subscriber had, so a frame is built once per
    (previous version, version)."""

    def __init__(self, board: Ranking, slots: ConnectionSlots, *, max_buffer: int) -> None:
        self.board = board
        self.slots = slots
        self.max_buffer = max_buffer
        self.connections: set[Connection] = set()
        self.subscribers: dict[Connection, None] = {}  # ordered set
        self.by_user: dict[str, set[Connection]] = {}
        # Connected users who are on the board: only they can be overtaken. Viewers who never
        # scored cost nothing per award (at 1,000 awards/s, asking the board about 1,000
        # connected viewers each time took the whole core).
        self._on_board: set[str] = set()
        self._dirty = asyncio.Event()
        self._version = 0
        self._top: list[tuple[int, Standing]] | None = None  # the board of the current version
        # version -> each user's score before their first award after that version was made
        self._since: dict[int, dict[str, int]] = {0: {}}
        self._frames: dict[int, bytes] = {}  # previous version -> frame of the current version
        self._swept = 0  # the version every subscriber had at the end of the last sweep
        self._advancing = asyncio.Lock()  # one version at a time (the board read may suspend)
        self._stopping = False
        self._last_top: list[tuple[str, str, int]] = []
        self._force = False  # make a new version even if the top 10 looks unchanged
        self._errands = Errands("a hub background task")
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
        if user_id not in self._on_board:
            try:
                ranked = await self.board.position(user_id) is not None
            except ServiceUnavailable:
                stop_if_cancelled()
                ranked = True  # unknown: better a board lookup too many than a rank_change too few
            if ranked and user_id in self.by_user:
                self._on_board.add(user_id)
        return True

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
                    self._on_board.discard(conn.user_id)
                self._errands.start(self.slots.release(conn.user_id, conn.id))

    def drop(self, conn: Connection, code: int, reason: str) -> None:
        """Stop sending to a connection now and close it in the background."""
        self.disconnect(conn)
        if not conn.ws.closed:
            self._errands.start(self._close(conn, code, reason))

    async def _close(self, conn: Connection, code: int, reason: str) -> None:
        # ws.close() first waits for the socket to drain, without a limit: a peer that stopped
        # reading (the usual reason to drop it) would keep its socket and handler for good.
        try:
            await asyncio.wait_for(conn.ws.close(code=code, message=reason.encode()), CLOSE_WAIT_SECONDS)
        except TimeoutError:
            conn.abort()

    async def subscribe(self, conn: Connection) -> None:
        """Add to the leaderboard channel and send the current state at once."""
        if self._top is None or self._dirty.is_set():  # changes are waiting: make their version now
            await self._advance()
        self.subscribers[conn] = None
        conn.subscribed = True
        conn.version = SNAPSHOT
        self._deliver(conn)

    def unsubscribe(self, conn: Connection) -> None:
        self.subscribers.pop(conn, None)
        conn.subscribed = False

    async def close_all(self, code: int = CLOSE_GOING_AWAY) -> None:
        """Close every socket (graceful shutdown)."""
        for conn in list(self.connections):
            self.drop(conn, code, "server shutting down")
        await self._errands.finished()

    # -- awards

    def resync(self) -> None:
        """Events may have been missed: send the current top 10 even if it looks unchanged."""
        self._force = True
        self._dirty.set()

    def on_award(self, event: AwardEvent) -> None:
        """Score and rank messages to the users concerned now; the top 10 in the next wave."""
        award = event.award
        for bases in self._since.values():
            bases.setdefault(award.user_id, award.previous_score)
        if event.rank <= TOP_SIZE:
            self._dirty.set()
        if not self.by_user:
            return
        if award.user_id in self.by_user:
            self._on_board.add(award.user_id)
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
            self._errands.start(self._tell_overtaken(award.user_id, event.rank, event.previous_rank))

    async def _tell_overtaken(self, winner: str, rank: int, previous: int | None) -> None:
        # Everyone the winner passed moved down one place: now at ranks rank+1 .. previous
        # (to the end of the board on a first award). Walk whichever is smaller: that rank
        # range, or the connected users on the board.
        candidates = self._on_board - {winner}
        if not candidates:
            return
        last = previous if previous is not None else await self.board.size()
        if last <= rank:
            return
        if last - rank <= len(candidates):
            moved = await self.board.ranked(rank + 1, last)
        else:
            found = await self.board.ranks(list(candidates))
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

    def _frame(self, top: list[tuple[int, Standing]], *, bases: dict[str, int]) -> bytes:
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
        # As GET /top: when the shown board last changed (the newest award in it).
        board = LiveBoard(leaderboard=entries, updated_at=iso(last_change(top) or now_ms()))
        return text_frame(encode(LeaderboardUpdate(data=board)))

    async def _advance(self) -> bool:
        """Make a new version if the top 10 changed (or a resync was asked for); True if made."""
        async with self._advancing:
            return await self._advance_locked()

    async def _advance_locked(self) -> bool:
        version = self._version + 1
        # Registered before the read: awards that land while it is under way count from here.
        self._since[version] = {}
        try:
            top = await self.board.top(TOP_SIZE)
        except BaseException:
            del self._since[version]
            raise
        shown = [(s.user_id, s.username, s.score) for _, s in top]
        # Boards only grow (no user is ever removed), so a shorter top is a board still being
        # rebuilt after a Redis loss: wait for the rebuild, which asks for a resync when done.
        unchanged = self._top is not None and shown == self._last_top and not self._force
        if unchanged or len(shown) < len(self._last_top):
            del self._since[version]
            return False
        self._version, self._top = version, top
        self._frames = {}
        self._last_top = shown
        self._force = False
        self.waves += 1
        return True

    def _deliver(self, conn: Connection) -> None:
        """Send the current version to one subscriber, `change` counted from what it had."""
        frame = self._frames.get(conn.version)
        if frame is None:
            assert self._top is not None  # a version exists before anyone is swept
            bases = self._since.get(conn.version, {}) if conn.version != SNAPSHOT else {}
            frame = self._frames[conn.version] = self._frame(self._top, bases=bases)
        if conn.send_frame(frame):
            conn.version = self._version

    async def _try_advance(self) -> bool:
        try:
            return await self._advance()
        except Exception:  # the board is unreachable: try again shortly, the last state must go out
            stop_if_cancelled()  # redis-py can turn the shutdown's cancellation into an error
            log.warning("leaderboard wave postponed", exc_info=True)
            asyncio.get_running_loop().call_later(WAVE_RETRY_SECONDS, self._dirty.set)
            return False

    async def _sweep(self) -> float:
        """Bring every subscriber to the current version; the seconds other work ran at its yields."""
        started = time.monotonic()
        yielded = 0.0
        while True:
            # Any new version during the pass (made here, or by a subscribe() meanwhile) leaves
            # the part already visited behind: another pass follows.
            version = self._version
            for i, conn in enumerate(list(self.subscribers)):
                if conn.version != self._version and conn in self.subscribers:
                    self._deliver(conn)
                if i % WAVE_CHUNK == WAVE_CHUNK - 1:
                    paused = time.monotonic()
                    await asyncio.sleep(0)
                    yielded += time.monotonic() - paused  # what the rest of the loop needed
                    if self._dirty.is_set():  # newer changes: the rest of this sweep gets them
                        self._dirty.clear()
                        await self._try_advance()
            self._forget_unheld()
            if self._version == version:
                break
            if time.monotonic() - started >= MIN_VERSION_GAP:
                # A long sweep under steady load: rest (in run) before the next pass, so the
                # awards that make the versions get the loop too.
                self._dirty.set()
                return yielded
        self._swept = self._version
        return yielded

    def _forget_unheld(self) -> None:
        # After every pass, not only when a sweep ends: under steady load one sweep runs pass
        # after pass, and every version made meanwhile kept a base map that each award updated.
        # Kept: versions a subscriber holds, the current one, and one being made right now.
        held = {conn.version for conn in self.subscribers}
        self._since = {v: bases for v, bases in self._since.items() if v in held or v >= self._version}

    def stop(self) -> None:
        """End `run` (also when a Redis client swallowed the task's cancellation)."""
        self._stopping = True
        self._dirty.set()

    async def run(self) -> None:
        """Send board versions until `stop()`."""
        while not self._stopping:
            await self._dirty.wait()
            if self._stopping:
                break
            self._dirty.clear()
            started = time.monotonic()
            # A subscribe may have made the version already: sweep whenever anyone is behind.
            if await self._try_advance() or self._version != self._swept:
                yielded = await self._sweep()
                took = time.monotonic() - started
                # Then rest as long as other work needed the loop during the sweep: under steady
                # load a sweep to 10,000 clients otherwise went on pass after pass, the awards that
                # make the versions queued behind it (p99 608 ms) and commit -> client p99 was 5x
                # one bare wave. An otherwise idle loop gets the next version out at once.
                await asyncio.sleep(max(MIN_VERSION_GAP - took, yielded))
