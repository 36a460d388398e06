"""The hub: the live side of one process, wiring the connection registry, the waves of each board's
top 10 and the per-user notices together behind the few calls the app and the session make."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from ..boards.catalog import Catalog
from ..errors import CLOSE_SERVICE_RESTART, BoardNotFound
from ..flights import InFlight
from ..limits import ConnectionSlots
from ..ranking import Ranking
from ..records import AwardEvent, Notice
from ..tasks import Errands
from .connections import RESTART_REASON, Connection, Connections
from .messages import Error, ErrorDetail, Refused, ServerMessage, Unsubscribed
from .notices import KeptNotices, Notices
from .streams import StreamConnection
from .waves import Waves, WaveTally
from .windows import WindowKey, Windows


async def _none_kept(user_id: str, after: int) -> list[Notice]:
    return []


class Hub:
    """Owns the live connections (`registry`), the broadcast of each board's top 10 (`waves`, one
    per board somebody watched), each board's rank windows (`windows`) and the messages to single
    users (`notices`)."""

    def __init__(
        self,
        ranking: Ranking,
        slots: ConnectionSlots,
        catalog: Catalog,
        clock: Callable[[], int],
        *,
        max_buffer: int,
        kept: KeptNotices = _none_kept,
        in_flight: InFlight | None = None,
    ) -> None:
        # One set of errands for closes, slot releases and overtake lookups: `finished` waits for all.
        errands = Errands("a hub background task")
        self.ranking = ranking
        self.catalog = catalog
        self.clock = clock
        self.in_flight = in_flight or InFlight(catalog, clock)  # writes on their way to the boards (the Placer's)
        self.registry = Connections(slots, errands, max_buffer=max_buffer)
        self.tally = WaveTally()
        self.waves: dict[str, Waves] = {}
        self.windows: dict[str, Windows] = {}
        self.notices = Notices(ranking, self.registry, errands, catalog, clock, kept=kept)
        self.registry.on_user_left = self.notices.unwatch
        self.registry.on_disconnect = self._unsubscribe_all
        catalog.on_load(self.end_retired)
        self.draining = False  # `drain` was called: a connection that arrives now is closed at once
        self._running: dict[str, asyncio.Task[None]] = {}  # by task name
        self._started = False
        self._stopped = asyncio.Event()

    def connect(self, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None) -> Connection:
        """Register a new connection."""
        return self.registry.connect(ws, transport)

    def stream(self, transport: asyncio.BaseTransport | None, *, chunked: bool) -> StreamConnection:
        """Register a new event stream (its body in HTTP/1.1 chunks, or as it is)."""
        conn = StreamConnection(self.registry, transport, chunked=chunked)
        self.registry.add(conn)
        return conn

    async def bind(self, conn: Connection, user_id: str, greeting: ServerMessage) -> bool:
        """Attach a user, sending `greeting` (`connected` or `authenticated`) before any message of
        theirs; False when that user already has the allowed number of connections."""
        if not await self.registry.bind(conn, user_id, greeting):
            return False
        await self.notices.watch(user_id)
        return True

    def disconnect(self, conn: Connection) -> None:
        """Forget a connection (idempotent)."""
        self.registry.disconnect(conn)

    def drop(self, conn: Connection, code: int, reason: str) -> None:
        """Stop sending to a connection now and close it in the background."""
        self.registry.drop(conn, code, reason)

    def board_of(self, board_id: str | None) -> str:
        """The board a subscription names (the default one when none); BOARD_NOT_FOUND if unknown."""
        return self.catalog.get(board_id or self.catalog.default).id

    async def subscribe(self, conn: Connection, board_id: str, max_rate: float | None = None, seq: int = 0) -> None:
        """Add to a board's leaderboard channel and send its current state at once, its messages
        numbered from seq + 1 (the session keeps a connection within MAX_BOARD_SUBSCRIPTIONS)."""
        await self._waves(board_id).subscribe(conn, max_rate, seq)

    async def watch(self, conn: Connection, board_id: str, key: WindowKey, max_rate: float | None = None) -> None:
        """Hold a window of a board (one per channel and board: a new one replaces it), starting
        with its snapshot."""
        await self._windows(board_id).subscribe(conn, key, max_rate)

    def holds(self, conn: Connection, board_id: str, channel: str = "leaderboard") -> bool:
        """Whether a connection holds this channel of this board."""
        if channel == "leaderboard":
            waves = self.waves.get(board_id)
            return waves is not None and conn in waves.subscribers
        windows = self.windows.get(board_id)
        return windows is not None and windows.holds(conn, channel)

    def unsubscribe(self, conn: Connection, board_id: str, channel: str = "leaderboard") -> None:
        """Leave a channel of a board."""
        if channel == "leaderboard":
            if (waves := self.waves.get(board_id)) is not None:
                waves.unsubscribe(conn)
        elif (windows := self.windows.get(board_id)) is not None:
            windows.unsubscribe(conn, channel)

    def subscriptions_of(self, conn: Connection) -> int:
        """How many board channels a connection holds, all boards together."""
        held = sum(conn in w.subscribers for w in self.waves.values())
        return held + sum(w.holds(conn, "ranks") + w.holds(conn, "around") for w in self.windows.values())

    def subscriptions(self) -> int:
        """Board subscriptions of this process's connections, all boards and channels together."""
        return sum(len(w.subscribers) for w in self.waves.values()) + sum(
            w.subscriptions() for w in self.windows.values()
        )

    def end_retired(self) -> None:
        """Boards no longer in use (retired): end their channels, each subscriber told. A socket
        gets an `error` (BOARD_NOT_FOUND) and `unsubscribed`; an event stream ends (its client's
        reconnect is then refused with 404)."""
        for board_id in [b for b in (*self.waves, *self.windows) if b not in self.catalog.boards]:
            held: list[tuple[Connection, str]] = []
            if (waves := self.waves.pop(board_id, None)) is not None:
                held += [(conn, "leaderboard") for conn in list(waves.subscribers)]
                for conn in list(waves.subscribers):
                    waves.unsubscribe(conn)
                waves.stop()
            if (windows := self.windows.pop(board_id, None)) is not None:
                held += list(windows.held)
                for conn, channel in list(windows.held):
                    windows.unsubscribe(conn, channel)
                windows.stop()
            for conn, channel in held:
                if isinstance(conn, StreamConnection):
                    self.registry.drop(conn, 1000, "board retired")  # (a stream has no close code)
                    continue
                refused = Refused(channel=channel, board=board_id)
                message = f"Board {board_id} was retired"
                conn.send(Error(error=ErrorDetail(code=BoardNotFound.code, message=message, details=refused)))
                conn.send(Unsubscribed(channel=channel, board=board_id))

    def _unsubscribe_all(self, conn: Connection) -> None:
        for waves in self.waves.values():
            waves.unsubscribe(conn)
        for windows in self.windows.values():
            windows.unsubscribe_all(conn)

    def _waves(self, board_id: str) -> Waves:
        waves = self.waves.get(board_id)
        if waves is None:
            waves = self.waves[board_id] = Waves(
                self.ranking, self.catalog.get(board_id), self.clock, self.tally, self.in_flight
            )
            self._start(f"waves-{board_id}", waves)
        return waves

    def _windows(self, board_id: str) -> Windows:
        windows = self.windows.get(board_id)
        if windows is None:
            windows = self.windows[board_id] = Windows(self.ranking, self.catalog.get(board_id), self.clock)
            self._start(f"windows-{board_id}", windows)
        return windows

    def _start(self, name: str, runner: Waves | Windows) -> None:
        if self._started and not self._stopped.is_set():
            self._running[name] = asyncio.get_running_loop().create_task(runner.run(), name=name)

    def drain(self, *, within: float) -> None:
        """The process is stopping: close every socket with 1012 (service restart), each cut short
        after at most `within` seconds, and any that arrives from now on at once (`draining`)."""
        self.draining = True
        self.registry.close_all(CLOSE_SERVICE_RESTART, RESTART_REASON, within=within)

    def close_all(self, code: int, reason: str) -> None:
        """Start closing every socket with `code`; the hub goes on accepting new ones."""
        self.registry.close_all(code, reason)

    async def finished(self) -> None:
        """Wait for every close, slot release and overtake lookup started so far."""
        await self.registry.finished()

    def on_award(self, event: AwardEvent) -> None:
        """Score and rank messages to the users concerned now; each board's top 10 in its next wave."""
        for move in event.moves:
            board = move.change.where.board
            if (waves := self.waves.get(board)) is not None:
                waves.on_move(event.user_id, move, event.at_ms)
            if (windows := self.windows.get(board)) is not None:
                windows.on_move(event.user_id, move)
        self.notices.on_award(event)

    def on_notices(self, notices: list[Notice]) -> None:
        """Notices kept by any process: to their users' connections here."""
        self.notices.deliver(notices)

    async def replay_notices(self, conn: Connection, after: int) -> None:
        """The notifications channel: the connection's user's kept notices after `after`, then live."""
        assert conn.user_id is not None
        await self.notices.replay(conn, conn.user_id, after)

    def shrank(self) -> None:
        """A user left the boards: send every board's top 10 again, shorter, and read every window again."""
        for waves in self.waves.values():
            waves.shrank()
        for windows in self.windows.values():
            windows.resync()

    def resync(self) -> None:
        """Events may have been missed: send every board's top 10 even if it looks unchanged, and
        read every window again."""
        for waves in self.waves.values():
            waves.resync()
        for windows in self.windows.values():
            windows.resync()

    async def run(self) -> None:
        """Send board versions (each board's waves in a task of its own) until `stop()`."""
        self._started = True
        for board_id, waves in self.waves.items():
            self._start(f"waves-{board_id}", waves)
        for board_id, windows in self.windows.items():
            self._start(f"windows-{board_id}", windows)
        try:
            await self._stopped.wait()
        finally:
            runners: list[Waves | Windows] = [*self.waves.values(), *self.windows.values()]
            for runner in runners:
                runner.stop()
            running = list(self._running.values())
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    def stop(self) -> None:
        """End `run` (also when a Redis client swallowed the task's cancellation)."""
        self._stopped.set()
