"""`/ws/scoreboard`: the WebSocket session of one client, speaking the contract's messages."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import msgspec
from aiohttp import WSMsgType, web

from ..auth import Principal, UserAuth
from ..clock import iso, now_ms
from ..errors import (
    CLOSE_SERVICE_RESTART,
    CLOSE_TOO_MANY,
    CLOSE_UNAUTHORIZED,
    ApiError,
    Forbidden,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)
from ..live.connections import RESTART_REASON, Connection
from ..live.hub import Hub
from ..live.messages import (
    BOARD_CHANNELS,
    MAX_BOARD_SUBSCRIPTIONS,
    MAX_WINDOW,
    Auth,
    Authenticated,
    Connected,
    Error,
    ErrorDetail,
    Ping,
    Pong,
    Refused,
    ServerMessage,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
    decode,
)
from ..live.windows import WindowKey
from ..settings import WebSocketSettings
from .edge import client_address
from .keys import ADMISSION, CONFIG, HUB, TRUSTED_PROXIES, USER_AUTH

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4096
AROUND_RADIUS = 5  # an around window's radius when the subscription names none, as GET /around
AUTH_GRACE_SECONDS = 10.0  # without anonymous viewers, how long a client has to send `auth`
CLOSE_TIMEOUT_SECONDS = 2.0  # how long a close waits for the client's answer
TOO_MANY = "too many connections for this user"


def check_origin(request: web.Request, allowed: tuple[str, ...]) -> None:
    """Refuse cross-site WebSocket hijacking: a browser's Origin must be allowed or same-host."""
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser; bearer tokens protect what needs protecting
        return
    if allowed:
        if origin in allowed or "*" in allowed:
            return
    elif urlsplit(origin).netloc == request.host:
        return
    raise Forbidden("Origin not allowed", details={"origin": origin})


class Session:
    """One client's conversation: authentication, subscriptions, pings, errors."""

    __slots__ = ("auth", "conn", "hub", "settings")  # one per connection: no __dict__

    def __init__(self, hub: Hub, conn: Connection, auth: UserAuth, settings: WebSocketSettings) -> None:
        self.hub = hub
        self.conn = conn
        self.auth = auth
        self.settings = settings

    async def login(self, principal: Principal, greeting: ServerMessage) -> bool:
        """Bind the user, greeting them first; False when over the per-user limit (the caller
        closes with CLOSE_TOO_MANY)."""
        if not await self.hub.bind(self.conn, principal.user_id, greeting):
            return False
        # Closed when the token stops being accepted, as a REST call would then be refused: at
        # `exp` plus the clock-skew leeway (closing at `exp` cut a token it had just accepted).
        self.conn.expire_at(principal.expires_at + self.auth.leeway)
        return True

    def connected(self, principal: Principal | None) -> Connected:
        """The `connected` greeting, with the user when the connection is already authenticated."""
        return Connected(
            timestamp=iso(now_ms()),
            client_id=self.conn.id,
            user_id=principal.user_id if principal else msgspec.UNSET,
        )

    def error(self, code: str, message: str, refused: Refused | None = None) -> None:
        """Send an `error` message (naming the subscription it refuses, if any); the connection goes on."""
        self.conn.send(Error(error=ErrorDetail(code=code, message=message, details=refused or msgspec.UNSET)))

    async def handle(self, data: str) -> None:
        """React to one text message (none once the connection is dropped: closed as one too many
        or unauthorized, what the client sent after is not answered)."""
        if self.conn.dropped:
            return
        try:
            message = decode(data)
        except ValidationFailed as exc:
            self.error(exc.code, exc.details if isinstance(exc.details, str) else exc.message)
            return
        if isinstance(message, Auth):
            await self._auth(message.token)
        elif self.conn.user_id is None and not self.settings.allow_anonymous:
            self.hub.drop(self.conn, CLOSE_UNAUTHORIZED, "authentication required")
        elif isinstance(message, Subscribe) and message.channel in BOARD_CHANNELS:
            await self._subscribe(message)
        elif isinstance(message, Subscribe):
            await self._notifications(message.after or 0)
        elif isinstance(message, Unsubscribe) and message.channel not in BOARD_CHANNELS:
            # Notices go to every connection of their user (contract): there is nothing to stop.
            self.conn.send(Unsubscribed(channel=message.channel))
        elif isinstance(message, Unsubscribe):
            board = message.board or self.hub.catalog.default
            self.hub.unsubscribe(self.conn, board, message.channel)
            self.conn.send(Unsubscribed(channel=message.channel, board=board))
        elif isinstance(message, Ping):
            self.conn.send(Pong(timestamp=iso(now_ms())))

    async def _subscribe(self, message: Subscribe) -> None:
        """`subscribed`, then the channel's snapshot; an `error` (BOARD_NOT_FOUND, VALIDATION_ERROR
        beyond 10 board subscriptions or for a bad window, UNAUTHORIZED for `around` without a
        user) instead when refused."""
        try:
            board = self.hub.board_of(message.board)
            key = self._window(message)
            held = self.hub.holds(self.conn, board, message.channel)
            if self.hub.subscriptions_of(self.conn) >= MAX_BOARD_SUBSCRIPTIONS and not held:
                raise ValidationFailed(f"A connection may hold at most {MAX_BOARD_SUBSCRIPTIONS} board subscriptions")
        except ApiError as exc:
            named = message.board or self.hub.catalog.default
            self.error(exc.code, exc.message, Refused(channel=message.channel, board=named))
            return
        self.conn.send(Subscribed(channel=message.channel, board=board))
        if key is None:
            await self.hub.subscribe(self.conn, board, message.max_rate)
        else:
            await self.hub.watch(self.conn, board, key, message.max_rate)

    async def _notifications(self, after: int) -> None:
        """`subscribed`, then the user's kept notices after `after`, then theirs as they come;
        an `error` (UNAUTHORIZED) on an anonymous connection, SERVICE_UNAVAILABLE when the kept
        ones cannot be read (the live ones come all the same)."""
        if self.conn.user_id is None:
            message = "The notifications channel needs an authenticated connection"
            self.error("UNAUTHORIZED", message, Refused(channel="notifications"))
            return
        self.conn.send(Subscribed(channel="notifications"))
        try:
            await self.hub.replay_notices(self.conn, after)
        except ServiceUnavailable as exc:
            self.error(exc.code, exc.message)

    def _window(self, message: Subscribe) -> WindowKey | None:
        """The window a `ranks` or `around` subscription asks for (None for the top 10)."""
        if message.channel == "ranks":
            first, last = message.first, message.last
            if first is None or last is None:
                raise ValidationFailed("A ranks subscription needs from and to")
            if last < first or last - first + 1 > MAX_WINDOW:
                raise ValidationFailed(f"A ranks window is from <= to, at most {MAX_WINDOW} ranks")
            return WindowKey("ranks", first=first, last=last)
        if message.channel == "around":
            if self.conn.user_id is None:
                raise Unauthorized("An around window needs an authenticated connection")
            radius = AROUND_RADIUS if message.radius is None else message.radius
            return WindowKey("around", user_id=self.conn.user_id, radius=radius)
        return None

    async def _auth(self, token: str) -> None:
        if self.conn.user_id is not None:
            self.error("VALIDATION_ERROR", "This connection is already authenticated")
            return
        try:
            principal = await self.auth.authenticate(token)
        except Unauthorized:
            self.hub.drop(self.conn, CLOSE_UNAUTHORIZED, "invalid token")
            return
        if not await self.login(principal, Authenticated(user_id=principal.user_id)):
            self.hub.drop(self.conn, CLOSE_TOO_MANY, TOO_MANY)

    def require_auth_soon(self) -> asyncio.TimerHandle:
        """Close an unauthenticated connection that does not send `auth` in time."""

        def check() -> None:
            if self.conn.user_id is None:
                self.hub.drop(self.conn, CLOSE_UNAUTHORIZED, "authentication required")

        return asyncio.get_running_loop().call_later(AUTH_GRACE_SECONDS, check)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """Accept a live connection: its origin and the connection limits are checked before the
    upgrade, so a refusal is an HTTP answer in the envelope (403, 429, 503)."""
    settings = request.app[CONFIG].websocket
    check_origin(request, settings.allowed_origins)
    async with request.app[ADMISSION].admitted(client_address(request, request.app[TRUSTED_PROXIES])):
        return await _session(request, settings)


async def _session(request: web.Request, settings: WebSocketSettings) -> web.WebSocketResponse:
    """Upgrade and serve one connection; the token (if any) is checked before anything is sent."""
    auth, hub = request.app[USER_AUTH], request.app[HUB]
    principal, token_ok = await _query_principal(request, auth)
    ws = await _upgrade(request)
    if not token_ok:
        await ws.close(code=CLOSE_UNAUTHORIZED, message=b"invalid token")
        return ws
    if hub.draining:  # accepted before the listener closed, answered after the drain began
        await ws.close(code=CLOSE_SERVICE_RESTART, message=RESTART_REASON.encode())
        return ws
    conn = hub.connect(ws, request.transport)
    try:
        await _converse(ws, Session(hub, conn, auth, settings), principal)
    finally:
        hub.disconnect(conn)
    return ws


async def _query_principal(request: web.Request, auth: UserAuth) -> tuple[Principal | None, bool]:
    """The user of the `token` query parameter (None without one), and whether that token is valid
    (given twice, it is not: which one is meant is unknown)."""
    tokens = request.query.getall("token", ())
    if not tokens:
        return None, True
    if len(tokens) > 1:
        return None, False
    token = tokens[0]
    try:
        return await auth.authenticate(token), True
    except Unauthorized:
        return None, False


async def _upgrade(request: web.Request) -> web.WebSocketResponse:
    """Answer the handshake; a request that is not one is a 400 in the envelope."""
    # compress=False: every subscriber gets the same pre-built frame; no per-client deflate.
    # No heartbeat or autoping here: live/keepalive.py pings all sockets from one task and needs to
    # see every frame, PONGs included.
    # aiohttp refuses a message of max_msg_size bytes itself: the contract closes only those over it.
    ws = web.WebSocketResponse(
        max_msg_size=MAX_MESSAGE_BYTES + 1, compress=False, timeout=CLOSE_TIMEOUT_SECONDS, autoping=False
    )
    try:
        await ws.prepare(request)
    except web.HTTPBadRequest:  # raised before anything is written: a plain GET, a bad handshake
        raise ValidationFailed("A WebSocket handshake is required (Upgrade: websocket)") from None
    return ws


async def _converse(ws: web.WebSocketResponse, session: Session, principal: Principal | None) -> None:
    """Log the user in (closed as one too many when over the limit), greet the client, and answer
    it until the connection ends."""
    if principal is None:
        session.conn.send(session.connected(None))
    elif not await session.login(principal, session.connected(principal)):
        await ws.close(code=CLOSE_TOO_MANY, message=TOO_MANY.encode())
        return
    deadline = None
    if principal is None and not session.settings.allow_anonymous:
        deadline = session.require_auth_soon()
    try:
        await _listen(ws, session)
    finally:
        if deadline is not None:
            deadline.cancel()


async def _listen(ws: web.WebSocketResponse, session: Session) -> None:
    """Answer the client's frames until the connection ends."""
    async for msg in ws:
        session.conn.heard = True
        if msg.type == WSMsgType.TEXT:
            try:
                await session.handle(msg.data)
            except Exception:
                # Upgraded: an error must not reach the request edge, which would answer with an
                # HTTP response on the WebSocket. The client hears of it; the connection goes on.
                log.exception("unhandled error in a WebSocket message")
                session.error("INTERNAL_ERROR", "Internal server error")
        elif msg.type == WSMsgType.BINARY:
            session.error("VALIDATION_ERROR", "Messages are JSON text")
        elif msg.type == WSMsgType.PING:
            await ws.pong(msg.data)
