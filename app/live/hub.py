"""The hub: the live side of one process, wiring the connection registry, the waves of the top 10
and the per-user notices together behind the few calls the app and the session make."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..errors import CLOSE_SERVICE_RESTART
from ..limits import ConnectionSlots
from ..ranking import Ranking
from ..records import AwardEvent
from ..tasks import Errands
from .connections import RESTART_REASON, Connection, Connections
from .notices import Notices
from .waves import Waves


class Hub:
    """Owns the live connections (`registry`), the broadcast of the top 10 (`waves`) and the
    messages to single users (`notices`)."""

    def __init__(self, ranking: Ranking, slots: ConnectionSlots, *, max_buffer: int) -> None:
        # One set of errands for closes, slot releases and overtake lookups: `finished` waits for all.
        errands = Errands("a hub background task")
        self.registry = Connections(slots, errands, max_buffer=max_buffer)
        self.waves = Waves(ranking, self.registry.subscribers)
        self.notices = Notices(ranking, self.registry, errands)
        self.registry.on_user_left = self.notices.unwatch
        self.draining = False  # `drain` was called: a connection that arrives now is closed at once

    def connect(self, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None) -> Connection:
        """Register a new connection."""
        return self.registry.connect(ws, transport)

    async def bind(self, conn: Connection, user_id: str) -> bool:
        """Attach a user; False when that user already has the allowed number of connections."""
        if not await self.registry.bind(conn, user_id):
            return False
        await self.notices.watch(user_id)
        return True

    def disconnect(self, conn: Connection) -> None:
        """Forget a connection (idempotent)."""
        self.registry.disconnect(conn)

    def drop(self, conn: Connection, code: int, reason: str) -> None:
        """Stop sending to a connection now and close it in the background."""
        self.registry.drop(conn, code, reason)

    async def subscribe(self, conn: Connection) -> None:
        """Add to the leaderboard channel and send the current state at once."""
        await self.waves.subscribe(conn)

    def unsubscribe(self, conn: Connection) -> None:
        """Leave the leaderboard channel."""
        self.waves.unsubscribe(conn)

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
        """Score and rank messages to the users concerned now; the top 10 in the next wave."""
        self.waves.on_award(event)
        self.notices.on_award(event)

    def resync(self) -> None:
        """Events may have been missed: send the current top 10 even if it looks unchanged."""
        self.waves.resync()

    async def run(self) -> None:
        """Send board versions until `stop()`."""
        await self.waves.run()

    def stop(self) -> None:
        """End `run` (also when a Redis client swallowed the task's cancellation)."""
        self.waves.stop()
