"""The registry of live connections: each WebSocket, the users bound to them (within their slots),
and how a connection is dropped and closed."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import Callable
from typing import cast

from aiohttp import web

from ..errors import CLOSE_TRY_AGAIN_LATER, CLOSE_UNAUTHORIZED
from ..limits import ConnectionSlots
from ..tasks import Errands
from .messages import Sequenced, ServerMessage, encode, text_frame

REMEMBERED_NOTICES = 200  # notice ids a connection remembers having sent (a user keeps 100)

CLOSE_WAIT_SECONDS = 5.0  # a close handshake (drain, close frame, answer) longer than this is cut short
RESTART_REASON = "service restart"  # the close reason of a draining process (code 1012)
PING_FRAME = bytes((0x89, 0))  # an unmasked PING with no payload


class Connection:
    """One WebSocket. Writes never wait: frames go straight to the socket's buffer, and a
    client whose buffer grows past the limit is closed instead of being waited for."""

    __slots__ = ("_expiry", "dropped", "heard", "id", "notices", "pinged", "registry", "transport", "user_id", "ws")

    def __init__(
        self, registry: Connections, ws: web.WebSocketResponse | None, transport: asyncio.BaseTransport | None
    ) -> None:
        self.registry = registry
        self.ws = ws
        self.transport = transport
        self.id = secrets.token_hex(8)
        self.user_id: str | None = None
        self.heard = False  # a frame arrived since the last keepalive sweep
        self.pinged = False  # the last keepalive sweep pinged it
        self.notices: Delivered | None = None  # the user's notices it was sent, from the first one on
        self._expiry: asyncio.TimerHandle | None = None
        self.dropped = False  # being closed by the server: nothing more is sent or answered

    @property
    def closed(self) -> bool:
        """The socket is closing or closed."""
        return self.ws is None or self.ws.closed

    def send_frame(self, frame: bytes) -> bool:
        """Queue bytes ready for the wire (a pre-built frame); False if the connection is gone or
        was too far behind."""
        # Duck-typed: uvloop's transports do not derive from asyncio.WriteTransport.
        transport = cast(asyncio.WriteTransport | None, self.transport)
        registry = self.registry
        if transport is None or self.dropped or transport.is_closing() or self.closed:
            registry.dropped_closed += 1
            return False
        if transport.get_write_buffer_size() > registry.max_buffer:
            registry.slow_closed += 1
            registry.drop(self, CLOSE_TRY_AGAIN_LATER, "client too slow")
            return False
        transport.write(frame)
        registry.sent += 1
        return True

    def send(self, message: ServerMessage) -> bool:
        """Encode and queue one message."""
        return self.send_frame(text_frame(encode(message)))

    def send_sequenced(self, message: Sequenced, seq: int) -> bool:
        """Queue one board-channel message with its subscription's seq."""
        return self.send_frame(text_frame(message.payload(seq)))

    async def close(self, code: int, reason: str) -> None:
        """The close handshake (waits for the socket to drain)."""
        if self.ws is not None:
            await self.ws.close(code=code, message=reason.encode())

    def beat(self) -> bool:
        """A keepalive sweep's visit: ping a quiet peer; False when it did not answer the last ping."""
        if self.heard:  # the peer sent something since the last sweep
            self.heard = self.pinged = False
        elif not self.pinged:
            self.pinged = True
            self.send_frame(PING_FRAME)
        else:  # pinged a sweep ago, silent since
            return False
        return True

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
            delay, self.registry.drop, self, CLOSE_UNAUTHORIZED, "token expired"
        )

    def forget(self) -> None:
        """Cancel the expiry timer (the connection is going away)."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None


class Delivered:
    """The notices one connection was sent (the newest ids), and those held back while a replay of
    the kept ones is read: each notice reaches a connection once, replayed or live."""

    __slots__ = ("held", "ids")

    def __init__(self) -> None:
        self.ids: dict[int, None] = {}  # insertion-ordered: the oldest is forgotten first
        self.held: list[tuple[int, bytes]] | None = None  # (id, frame) arriving during a replay

    def first_time(self, notice_id: int) -> bool:
        """Whether this notice is new to the connection (it is remembered from now on)."""
        if notice_id in self.ids:
            return False
        self.ids[notice_id] = None
        if len(self.ids) > REMEMBERED_NOTICES:
            del self.ids[next(iter(self.ids))]
        return True


def _nobody_listens(user_id: str) -> None:
    pass


def _nobody_subscribes(conn: Connection) -> None:
    pass


class Connections:
    """Every open connection of this process and each user's connections (bound within the user's
    slots); the keepalive sweeps these connections."""

    def __init__(self, slots: ConnectionSlots, errands: Errands, *, max_buffer: int) -> None:
        self.slots = slots
        self.max_buffer = max_buffer
        self.connections: set[Connection] = set()
        self.by_user: dict[str, set[Connection]] = {}
        # Told the user whose last connection went away (the notices stop watching them).
        self.on_user_left: Callable[[str], None] = _nobody_listens
        # Told of every connection that goes (the hub ends its subscriptions).
        self.on_disconnect: Callable[[Connection], None] = _nobody_subscribes
        self._errands = errands
        # Counted in place for the metrics: frames written, frames not written because the
        # connection was going away or was closed for being too slow (the frame that found it so
        # is dropped too), and connections refused for being one over their user's limit.
        self.sent = 0
        self.dropped_closed = 0
        self.slow_closed = 0
        self.refused_user = 0

    def connect(self, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None) -> Connection:
        """Register a new connection."""
        return self.add(Connection(self, ws, transport))

    def add(self, conn: Connection) -> Connection:
        """Register a connection made elsewhere (an event stream)."""
        self.connections.add(conn)
        self._cap_socket_buffer(conn.transport)
        return conn

    def _cap_socket_buffer(self, transport: asyncio.BaseTransport | None) -> None:
        # The kernel would otherwise grow a stalled socket's send buffer to megabytes, hiding a
        # client that stopped reading; capped, "behind" means behind by about max_buffer.
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.max_buffer)

    async def bind(self, conn: Connection, user_id: str, greeting: ServerMessage) -> bool:
        """Attach a user, sending `greeting` first; False when that user already has the allowed
        number of connections."""
        if not await self.slots.acquire(user_id, conn.id):
            self.refused_user += 1
            return False
        if conn not in self.connections:  # closed while the slot was being taken
            await self.slots.release(user_id, conn.id)
            return False
        # Sent before the user's own messages can reach the connection, with nothing awaited between.
        conn.send(greeting)
        self.by_user.setdefault(user_id, set()).add(conn)
        conn.user_id = user_id
        return True

    def disconnect(self, conn: Connection) -> None:
        """Forget a connection (idempotent)."""
        conn.forget()
        self.connections.discard(conn)
        self.on_disconnect(conn)
        if conn.user_id is not None:
            owned = self.by_user.get(conn.user_id)
            if owned is not None and conn in owned:
                owned.discard(conn)
                if not owned:
                    del self.by_user[conn.user_id]
                    self.on_user_left(conn.user_id)
                self._errands.start(self.slots.release(conn.user_id, conn.id))

    def drop(self, conn: Connection, code: int, reason: str, *, within: float | None = None) -> None:
        """Stop sending to a connection now and close it in the background, cut short after
        CLOSE_WAIT_SECONDS (or `within`, when shorter)."""
        self.disconnect(conn)
        if not conn.closed and not conn.dropped:
            conn.dropped = True
            wait = CLOSE_WAIT_SECONDS if within is None else min(within, CLOSE_WAIT_SECONDS)
            self._errands.start(self._close(conn, code, reason, wait))

    async def _close(self, conn: Connection, code: int, reason: str, within: float) -> None:
        # ws.close() first waits for the socket to drain, without a limit: a peer that stopped
        # reading (the usual reason to drop it) would keep its socket and handler for good.
        try:
            await asyncio.wait_for(conn.close(code, reason), within)
        except TimeoutError:
            conn.abort()

    def close_all(self, code: int, reason: str, *, within: float | None = None) -> None:
        """Start closing every socket, each as `drop` does; `finished` waits for them."""
        for conn in list(self.connections):
            self.drop(conn, code, reason, within=within)

    async def finished(self) -> None:
        """Wait for the closes and slot releases started so far."""
        await self._errands.finished()
