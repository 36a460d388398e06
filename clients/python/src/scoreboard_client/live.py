"""`LiveStream`: the WebSocket's messages as an async iterator that reconnects (backoff with jitter)
and subscribes again by itself, so that a consumer sees a fresh snapshot after every drop."""

from __future__ import annotations

import asyncio
import collections
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiohttp
import msgspec
from aiohttp import WSMsgType

from .errors import (
    Forbidden,
    PayloadTooLarge,
    RateLimited,
    ScoreboardError,
    Unauthorized,
    UnexpectedResponse,
    ValidationError,
    handshake_refusal,
    refusal,
)
from .messages import Authenticated, Connected, LiveError, LiveMessage, Overtaken, Subscribed, decode_message

if TYPE_CHECKING:
    from .client import Client

CLOSE_TOO_MANY = 4429
# Closes another connection may not meet (a proxy's or the server's going away or restart, a drop,
# a client too far behind): reconnect. Any other close would end the next connection alike: raised.
TRANSIENT_CLOSES = {1000, 1001, 1006, 1011, 1012, 1013, 1014}
REFUSED_CLOSES: dict[int, tuple[type[ScoreboardError], int, str, str]] = {
    1003: (ValidationError, 400, "VALIDATION_ERROR", "the server refused a message's kind of data"),
    1007: (ValidationError, 400, "VALIDATION_ERROR", "the server refused a message that is not UTF-8"),
    1008: (Forbidden, 403, "FORBIDDEN", "the server refused a message against its policy"),
    1009: (
        PayloadTooLarge,
        413,
        "PAYLOAD_TOO_LARGE",
        "the server refused a message as too big (`auth` with a long token?)",
    ),
    4401: (Unauthorized, 401, "UNAUTHORIZED", "the live connection's token is invalid or expired"),
}
HANDSHAKE_SECONDS = 10.0  # for `connected` and `authenticated` to arrive on a new connection
# Refusals of the handshake that another try may not meet: the HTTP statuses of overload or restart.
RETRIED_STATUSES = {429, 502, 503, 504}


class _Retry(Exception):
    """This connection attempt failed in a way that another attempt may not."""


def subscriptions(
    *,
    board: str | None,
    around: int | None,
    ranks: tuple[int, int] | None,
    notifications: bool,
    after: int | None,
    max_rate: float | None,
) -> list[dict[str, Any]]:
    """The `subscribe` messages of a stream, as the contract spells them."""
    common: dict[str, Any] = {} if board is None else {"board": board}
    if max_rate is not None:
        common["maxRate"] = max_rate
    subs = [{"type": "subscribe", "channel": "leaderboard", **common}]
    if around is not None:
        subs.append({"type": "subscribe", "channel": "around", **common, "radius": around})
    if ranks is not None:
        first, last = ranks
        subs.append({"type": "subscribe", "channel": "ranks", **common, "from": first, "to": last})
    if notifications:
        subs.append({"type": "subscribe", "channel": "notifications", **({} if after is None else {"after": after})})
    return subs


class LiveStream:
    """Live messages of one board (and the windows and notices asked for) across reconnects.

    Every message the server sends is yielded, typed (see messages.py), `connected` and
    `subscribed` included, so a consumer can tell a reconnect. A subscription the server refuses
    raises its error (`BoardNotFound`...); one it ends later (its board retired) is yielded as
    `LiveError` and `Unsubscribed`, the stream going on without it; an invalid or expired token raises `Unauthorized`, a
    message over the server's limit (a token too long for `auth`) `PayloadTooLarge`, one connection
    over the user's limit (4429) `RateLimited` once the client's `retries` reconnects met it too.
    A drop, a server going away or restarting (1001, 1012), or 1011, 1013 are followed by a new
    connection after a random delay that grows with each failed attempt, and the subscriptions
    again; any other close code raises a `ScoreboardError`."""

    def __init__(
        self,
        client: Client,
        *,
        board: str | None,
        around: int | None,
        ranks: tuple[int, int] | None,
        notifications: bool,
        after: int | None,
        max_rate: float | None,
        heartbeat: float,
    ) -> None:
        if (around is not None or notifications) and client.token is None:
            raise ValueError("`around` and `notifications` follow a user: the client needs a token")
        self.client = client
        self.board = board
        self.around = around
        self.ranks = ranks
        self.notifications = notifications
        self.after = after
        self.max_rate = max_rate
        self.heartbeat = heartbeat
        self.attempts = 0  # connection attempts so far, failed ones included
        self.close_codes: list[int | None] = []  # of the connections that ended, in order
        self._backoff = client.backoff()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ready: collections.deque[LiveMessage] = collections.deque()  # read, not yielded yet
        self._channels: set[str] = set()  # of the subscriptions sent on this connection
        self._unanswered: list[str] = []  # channels of subscriptions without `subscribed` or `error` yet, in order
        self._ended: set[str] = set()  # channels of subscriptions the server ended
        self._too_many = 0  # 4429 closes in a row
        self._closed = False

    def __aiter__(self) -> Self:
        return self

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection; iteration ends."""
        self._closed = True
        self.client.forget_stream(self)
        if self._ws is not None:
            ws, self._ws = self._ws, None
            await ws.close()

    async def __anext__(self) -> LiveMessage:
        while not self._closed:
            ws = self._ws
            if ws is None:
                await self._connect()
                continue
            if self._ready:
                return self._ready.popleft()
            msg = await ws.receive()
            if msg.type == WSMsgType.TEXT:
                message = await self._decode(ws, msg.data)
                if isinstance(message, Subscribed | LiveError):
                    await self._answered(message)
                elif isinstance(message, Overtaken) and message.id is not None:
                    # A resubscription replays only what came after the newest one seen.
                    self.after = max(self.after or 0, message.id)
                return message
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                await self._lost(ws)
        raise StopAsyncIteration

    async def _answered(self, message: Subscribed | LiveError) -> None:
        """Raise the refusal of a subscription asked for; note one the server ended (not asked again)."""
        if isinstance(message, Subscribed):
            if message.channel in self._unanswered:
                self._unanswered.remove(message.channel)
        else:
            about = message.error.details
            # A server without `details` answers subscriptions in the order they were sent.
            channel = about.channel if about else next(iter(self._unanswered), None)
            if channel in self._unanswered:
                await self.aclose()
                details = msgspec.to_builtins(about) if about else None
                raise refusal(message.error.code, f"subscription refused: {message.error.message}", details)
            if channel in self._channels:
                self._ended.add(channel)  # its board retired: a reconnect's subscribe would be refused
        if not self._unanswered:
            self._backoff.reset()
            self._too_many = 0

    async def _lost(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """The connection ended: raise when another one would end the same way, else forget it."""
        if self._ws is ws:
            self._ws = None
        code = ws.close_code
        await ws.close()
        if self._closed:  # closed by aclose()
            return
        self.close_codes.append(code)
        await self._judge_close(code)

    async def _judge_close(self, code: int | None) -> None:
        """Return when a connection closed with `code` is worth another; else close and raise."""
        if code is None or code in TRANSIENT_CLOSES:  # None: no close frame, the connection broke
            return
        if code == CLOSE_TOO_MANY:
            # The user's limit may count a connection of theirs that just broke, until the server
            # notices it is gone: worth a few tries, as a failed request is.
            self._too_many += 1
            if self._too_many <= self.client.retries:
                return
            await self.aclose()
            raise RateLimited(429, "RATE_LIMITED", "the user holds as many live connections as allowed (4429)")
        await self.aclose()
        cls, status, error_code, why = REFUSED_CLOSES.get(code, (ScoreboardError, 400, f"CLOSED_{code}", "closed"))
        raise cls(status, error_code, f"{why} (close code {code})")

    async def _connect(self) -> None:
        """Connect and subscribe, after a delay when this is a reconnect; again until it works."""
        while not self._closed:
            if self.attempts:
                await asyncio.sleep(self._backoff.next_delay())
            self.attempts += 1
            try:
                ws = await self._open()
            except _Retry:
                continue
            if self._closed:  # by aclose() while connecting
                await ws.close()
            else:
                self._ws = ws
            return

    async def _open(self) -> aiohttp.ClientWebSocketResponse:
        """A new connection, authenticated and with every subscription sent."""
        try:
            ws = await self.client.session().ws_connect(self.client.live_url(), heartbeat=self.heartbeat)
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in RETRIED_STATUSES:
                raise _Retry from exc
            await self.aclose()
            raise handshake_refusal(exc.status, f"WebSocket refused: {exc.message}") from exc
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise _Retry from exc
        try:
            await self._greet(ws)
        except (aiohttp.ClientConnectionError, ConnectionError) as exc:
            await ws.close()
            raise _Retry from exc
        except BaseException:
            await ws.close()
            raise
        return ws

    async def _greet(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Read `connected`, authenticate, send the subscriptions."""
        self._ready.clear()
        self._ready.append(await self._expect(ws, Connected))
        if self.client.token is not None:
            await ws.send_json({"type": "auth", "token": self.client.token})
            self._ready.append(await self._expect(ws, Authenticated))
        subs = subscriptions(
            board=self.board,
            around=self.around,
            ranks=self.ranks,
            notifications=self.notifications,
            after=self.after,
            max_rate=self.max_rate,
        )
        subs = [sub for sub in subs if sub["channel"] not in self._ended]
        for sub in subs:
            await ws.send_json(sub)
        self._channels = {sub["channel"] for sub in subs}
        self._unanswered = [sub["channel"] for sub in subs]

    async def _expect(self, ws: aiohttp.ClientWebSocketResponse, kind: type[Connected | Authenticated]) -> LiveMessage:
        """The next message, which must be of `kind`."""
        try:
            msg = await ws.receive(timeout=HANDSHAKE_SECONDS)
        except TimeoutError as exc:
            raise _Retry from exc
        if msg.type != WSMsgType.TEXT:
            await self._judge_close(ws.close_code)
            raise _Retry
        message = await self._decode(ws, msg.data)
        if not isinstance(message, kind):
            await self.aclose()
            raise UnexpectedResponse(101, "UNEXPECTED_RESPONSE", f"expected {kind.__name__} first, got {message!r}")
        return message

    async def _decode(self, ws: aiohttp.ClientWebSocketResponse, data: str) -> LiveMessage:
        """The message; a frame that is not one closes the stream and raises UnexpectedResponse."""
        try:
            return decode_message(data)
        except msgspec.DecodeError:  # not JSON, or a known type with the wrong shape
            await ws.close()
            await self.aclose()
            raise UnexpectedResponse(101, "UNEXPECTED_RESPONSE", f"not a live message: {data[:200]!r}") from None
