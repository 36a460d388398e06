"""`Client`: every REST route of the Scoreboard API as an async method, the action flow as one call,
and the live iterator."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, Mapping
from types import TracebackType
from typing import Any, Generic, Literal, Self, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec
from yarl import URL

from . import models as m
from .backoff import Backoff
from .errors import ActionTooFast, ScoreboardError, UnexpectedResponse, make_error
from .events import read_events
from .live import LiveStream
from .messages import LiveMessage

T = TypeVar("T")
A = TypeVar("A")
Auth = Literal["user", "service"] | None
JSON = "application/json"
# The server may check an action's minimum duration on another process's clock than the one that
# issued its token: wait this much beyond the minimum.
CLOCK_MARGIN_SECONDS = 0.1
# The server sends an SSE keepalive every half `websocket.heartbeat_seconds` (15 s by default): a
# stream silent for this long is dead.
SSE_IDLE_SECONDS = 60.0


class _Ok(msgspec.Struct, Generic[T]):
    success: Literal[True]
    data: T


_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}
_errors = msgspec.json.Decoder(m.ErrorEnvelope)


def _decoder(data_type: Any) -> msgspec.json.Decoder[Any]:
    decoder = _decoders.get(data_type)
    if decoder is None:
        decoder = _decoders[data_type] = msgspec.json.Decoder(_Ok[data_type])
    return decoder


def _segment(value: str) -> str:
    """A path segment: percent-encoded, dots too, so that an id such as `..` stays an id."""
    return quote(value, safe="").replace(".", "%2E")


class Client:
    """A connection to one Scoreboard server.

    `token` is a user's JWT (operators' too) for the routes that need a user; `service_key` is a
    trusted server's key for score writes and attestations. Use it as `async with Client(url,
    token=...) as client:`; a `session` given is used and left open, otherwise the client opens and
    closes its own (a session given no longer resends a GET or DELETE by itself: the client decides
    what is retried). Reads, trusted writes and attestations are retried `retries` times after a
    connection failure or a timeout (a write with the same Idempotency-Key; an attestation is
    idempotent by itself); initialize and update never are, since a retry could not tell whether
    the first one counted. Every other failure raises its `ScoreboardError`."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        service_key: str | None = None,
        session: aiohttp.ClientSession | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 2,
        backoff_base: float = 0.25,
        backoff_cap: float = 10.0,
    ) -> None:
        self.base_url = URL(base_url.rstrip("/"))
        self.token = token
        self.service_key = service_key
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._session = _without_resends(session) if session is not None else None
        self._owns_session = session is None
        self._streams: set[LiveStream] = set()
        self._min_seconds: dict[str, float] = {}  # learned from ACTION_TOO_FAST, per action type

    async def __aenter__(self) -> Self:
        self.session()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every live stream, and the session when the client opened it."""
        for stream in list(self._streams):
            await stream.aclose()
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def session(self) -> aiohttp.ClientSession:
        """The HTTP session, opened on first use when none was given."""
        if self._session is None:
            self._session = _without_resends(aiohttp.ClientSession())
        return self._session

    # The default board.

    async def top(self, *, limit: int | None = None) -> m.TopData:
        """The top of the default board (10 entries unless `limit`, at most 100)."""
        return await self._get("/api/v1/scoreboard/top", m.TopData, params={"limit": limit})

    async def actions(self) -> m.ActionsData:
        """The server's action catalog: each action type, its score, minimum time and boards."""
        return await self._get("/api/v1/actions", m.ActionsData)

    async def initialize(self, action_type: str, action_id: str, *, user_id: str | None = None) -> m.InitializeData:
        """Start an action: a one-time token worth the score the server's catalog gives the action."""
        body = m.InitializeRequest(action_type=action_type, action_id=action_id, user_id=user_id)
        return await self._call("POST", "/api/v1/actions/initialize", m.InitializeData, body=body, auth="user")

    async def update(
        self, action_token: str, action_id: str, *, user_id: str | None = None
    ) -> m.UpdateData | m.HeldData:
        """Complete an action with its token: the award, once; HeldData (202) when a cheat rule holds
        it for an operator (the token is spent; it lands only if approved)."""
        body = m.UpdateRequest(action_token=action_token, action_id=action_id, user_id=user_id)
        path = "/api/v1/scoreboard/update"
        return await self._call("POST", path, m.UpdateData, accepted=m.HeldData, body=body, auth="user")

    async def complete(
        self, action_type: str, action_id: str, *, user_id: str | None = None
    ) -> m.UpdateData | m.HeldData:
        """Initialize and update in one call, waiting out the action's minimum duration when the
        server has one (learned from its ACTION_TOO_FAST answer, then waited before the update)."""
        init = await self.initialize(action_type, action_id, user_id=user_id)
        issued = time.monotonic()  # the server issued the token before this: waiting from here is enough
        if (known := self._min_seconds.get(action_type)) is not None:
            await _sleep_until(issued + known + CLOCK_MARGIN_SECONDS)
        try:
            return await self.update(init.action_token, action_id, user_id=user_id)
        except ActionTooFast as exc:
            if exc.min_seconds is None:
                raise
            self._min_seconds[action_type] = exc.min_seconds
            await _sleep_until(issued + exc.min_seconds + CLOCK_MARGIN_SECONDS)
        return await self.update(init.action_token, action_id, user_id=user_id)

    async def user_score(self, user_id: str) -> m.UserScoreData:
        """A user's score, rank and percentile on the default board (rank null before an award)."""
        path = f"/api/v1/users/{_segment(user_id)}/score"
        return await self._get(path, m.UserScoreData, auth="user")

    # Boards.

    async def boards(self) -> m.BoardsData:
        """Every board in use, the default first, each with its current period."""
        return await self._get("/api/v1/boards", m.BoardsData)

    async def board(self, board: str) -> m.BoardDetail:
        """One board, with the count of entries in its current period."""
        return await self._get(f"/api/v1/boards/{_segment(board)}", m.BoardDetail)

    async def events(
        self,
        board: str,
        *,
        max_rate: float | None = None,
        last_event_id: int | None = None,
        idle_timeout: float = SSE_IDLE_SECONDS,
    ) -> AsyncGenerator[tuple[int | None, LiveMessage], None]:
        """A board's top 10 as Server-Sent Events (for where a WebSocket cannot go): each event's id
        (its seq) and message, a snapshot first. It ends when the server ends the stream; pass the
        last id as `last_event_id` to go on. A refusal raises its error before the first event;
        `TimeoutError` when nothing, not even a keepalive, came for `idle_timeout` seconds (the
        server sends one every half `websocket.heartbeat_seconds`, 15 s by default: a server set
        to more than 120 needs a longer `idle_timeout`)."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        params = {"maxRate": str(max_rate)} if max_rate is not None else {}
        path = f"/api/v1/boards/{_segment(board)}/stream"
        # No total: the stream lasts as long as the server sends. The server's keepalive comments
        # keep a live connection under `idle_timeout`; a dead one is noticed after it.
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout.total, sock_read=idle_timeout)
        async with self.session().get(self._url(path), params=params, headers=headers, timeout=timeout) as response:
            if response.status >= 400:
                raise _refusal(response, await response.read())
            async for event in read_events(response):
                yield event

    async def board_top(self, board: str, *, limit: int | None = None, period: str | None = None) -> m.BoardTopData:
        """The top of a board in a period: `current` (the default), `previous` or a period's id."""
        path = f"/api/v1/boards/{_segment(board)}/top"
        return await self._get(path, m.BoardTopData, params={"limit": limit, "period": period})

    async def ranks(
        self, board: str, *, from_: int | None = None, limit: int | None = None, period: str | None = None
    ) -> m.RanksData:
        """The entries at ranks `from_` .. `from_ + limit - 1` (defaults 1 and 10), and the total."""
        path = f"/api/v1/boards/{_segment(board)}/ranks"
        return await self._get(path, m.RanksData, params={"from": from_, "limit": limit, "period": period})

    async def around(
        self, board: str, user_id: str, *, radius: int | None = None, period: str | None = None
    ) -> m.AroundData:
        """A user's rank and the entries `radius` ranks (default 5) either side; rank None and no
        entries when the user is not on the board."""
        path = f"/api/v1/boards/{_segment(board)}/around/{_segment(user_id)}"
        return await self._get(path, m.AroundData, params={"radius": radius, "period": period})

    async def lookup(self, board: str, user_ids: list[str], *, period: str | None = None) -> m.LookupData:
        """The entries of these users (1-100) that are on the board, by rank: a friends' board."""
        body = m.LookupRequest(user_ids=user_ids, period=period) if period else m.LookupRequest(user_ids=user_ids)
        path = f"/api/v1/boards/{_segment(board)}/lookup"
        return await self._call("POST", path, m.LookupData, body=body, retry=True)

    async def periods(self, board: str) -> m.PeriodsData:
        """The board's current period and the kept finished ones that have entries, newest first."""
        return await self._get(f"/api/v1/boards/{_segment(board)}/periods", m.PeriodsData)

    async def user_boards(self, user_id: str) -> m.UserBoardsData:
        """A user's standing in the current period of every board they are on."""
        return await self._get(f"/api/v1/users/{_segment(user_id)}/boards", m.UserBoardsData, auth="user")

    async def notifications(self, *, after: int | None = None) -> m.NotificationsData:
        """The caller's kept notices (who passed them), oldest first; only those after the notice `after`."""
        return await self._get(
            "/api/v1/users/me/notifications", m.NotificationsData, params={"after": after}, auth="user"
        )

    # Trusted servers.

    async def write_score(
        self,
        board: str,
        user_id: str,
        score: int,
        *,
        subscore: int | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> m.ScoreWriteData:
        """A trusted server's score for a user, applied by the board's operator (with the service key).
        The write is made once per `idempotency_key`: a fresh uuid4 when none is given, kept for this
        call's retries; give your own to make a write once across restarts of your process."""
        body = m.ScoreWriteRequest(user_id=user_id, score=score, subscore=subscore, metadata=metadata)
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        path = f"/api/v1/boards/{_segment(board)}/scores"
        return await self._call("POST", path, m.ScoreWriteData, body=body, auth="service", headers=headers, retry=True)

    async def attest(self, action_id: str, user_id: str) -> m.AttestData:
        """Vouch for a user's action, which an action marked `attest` needs before its update awards
        (with the service key, scope actions:attest). Safe to repeat: the attestation held is answered."""
        path = f"/api/v1/actions/{_segment(action_id)}/attest"
        body = m.AttestRequest(user_id=user_id)
        return await self._call("POST", path, m.AttestData, body=body, auth="service", retry=True)

    # Operators (a token whose `roles` claim holds the server's admin role).

    async def create_board(self, board: m.BoardCreate) -> m.BoardDetail:
        """Create a board at run time; it survives restarts."""
        return await self._call("POST", "/api/v1/admin/boards", m.BoardDetail, body=board, auth="user")

    async def change_board(self, board: str, change: m.BoardChange) -> m.BoardDetail:
        """Change a board's title, kept periods or format."""
        path = f"/api/v1/admin/boards/{_segment(board)}"
        return await self._call("PATCH", path, m.BoardDetail, body=change, auth="user")

    async def retire_board(self, board: str, reason: str | None = None) -> m.RetiredData:
        """Retire a board: no longer listed, read or written; its id is never used again. The act is
        kept in the audit record with the operator and `reason`."""
        path = f"/api/v1/admin/boards/{_segment(board)}"
        body = m.BoardRetire(reason=reason) if reason is not None else None
        return await self._call("DELETE", path, m.RetiredData, body=body, auth="user")

    async def held(
        self, *, status: str | None = None, after: int | None = None, limit: int | None = None
    ) -> m.HeldListData:
        """Awards a cheat rule held: the pending ones unless `status`, oldest first, a page after `after`."""
        params = {"status": status, "after": after, "limit": limit}
        return await self._get("/api/v1/admin/held", m.HeldListData, params=params, auth="user")

    async def approve_held(self, held_id: int, reason: str) -> m.HeldAwardData:
        """Land a held award on its boards; AlreadyDecided when it was decided before."""
        path = f"/api/v1/admin/held/{held_id}/approve"
        return await self._call("POST", path, m.HeldAwardData, body=m.DecisionRequest(reason=reason), auth="user")

    async def reject_held(self, held_id: int, reason: str) -> m.HeldAwardData:
        """Decide that a held award never lands; AlreadyDecided when it was decided before."""
        path = f"/api/v1/admin/held/{held_id}/reject"
        return await self._call("POST", path, m.HeldAwardData, body=m.DecisionRequest(reason=reason), auth="user")

    async def disqualify(self, user_id: str, reason: str) -> m.UserModerationData:
        """Disqualify a user: off every board, their writes refused (Disqualified) until reinstated."""
        path = f"/api/v1/admin/users/{_segment(user_id)}/disqualify"
        return await self._call(
            "POST", path, m.UserModerationData, body=m.ModerationRequest(reason=reason), auth="user"
        )

    async def reinstate(self, user_id: str, reason: str) -> m.UserModerationData:
        """Reinstate a disqualified user: every board and kept period shows them as before."""
        path = f"/api/v1/admin/users/{_segment(user_id)}/reinstate"
        return await self._call(
            "POST", path, m.UserModerationData, body=m.ModerationRequest(reason=reason), auth="user"
        )

    async def adjust(
        self, board: str, user_id: str, delta: int, reason: str, *, period: str | None = None
    ) -> m.AdjustedData:
        """Add a signed `delta` to a user's entry in `period` (default the current one): a correction
        in the history, never an edit."""
        body = m.AdjustRequest(delta=delta, reason=reason, period=period or "current")
        path = f"/api/v1/admin/boards/{_segment(board)}/scores/{_segment(user_id)}/adjust"
        return await self._call("POST", path, m.AdjustedData, body=body, auth="user")

    async def remove_entry(self, board: str, period: str, user_id: str, reason: str) -> m.RemovedData:
        """Take one user's entry off one board period (`current`, `previous` or a period id)."""
        path = f"/api/v1/admin/boards/{_segment(board)}/periods/{_segment(period)}/entries/{_segment(user_id)}/remove"
        return await self._call("POST", path, m.RemovedData, body=m.ModerationRequest(reason=reason), auth="user")

    async def wipe_period(self, board: str, period: str, reason: str) -> m.WipedData:
        """Take every entry off one board period; the act keeps each one removed."""
        path = f"/api/v1/admin/boards/{_segment(board)}/periods/{_segment(period)}/wipe"
        return await self._call("POST", path, m.WipedData, body=m.ModerationRequest(reason=reason), auth="user")

    async def user_history(
        self, user_id: str, *, after: int | None = None, limit: int | None = None
    ) -> m.UserHistoryData:
        """A user's changes newest first (a page below `after`), the moderation acts on them and
        whether they are disqualified."""
        path = f"/api/v1/admin/users/{_segment(user_id)}/history"
        return await self._get(path, m.UserHistoryData, params={"after": after, "limit": limit}, auth="user")

    # Personal data.

    async def export(self) -> m.ExportData:
        """Everything the server keeps about the token's user, as one document."""
        return await self._get("/api/v1/users/me/export", m.ExportData, auth="user")

    async def erase_me(self) -> m.ErasedData:
        """Erase the token's user: off every board, their history kept under a pseudonym."""
        return await self._call("DELETE", "/api/v1/users/me", m.ErasedData, auth="user")

    async def erase_user(self, user_id: str) -> m.ErasedData:
        """An operator's erasure of a user (by the operators' route: `me` there is a user's id, not the caller)."""
        return await self._call("DELETE", f"/api/v1/admin/users/{_segment(user_id)}", m.ErasedData, auth="user")

    # Live.

    def live(
        self,
        board: str | None = None,
        *,
        around: int | None = None,
        ranks: tuple[int, int] | None = None,
        notifications: bool = False,
        after: int | None = None,
        max_rate: float | None = None,
        heartbeat: float = 20.0,
    ) -> LiveStream:
        """The board's live messages (the default board when None), as an async iterator that
        reconnects and resubscribes by itself. `around`: also the window of this radius around the
        token's user; `ranks`: also the window of ranks (first, last); `notifications`: also the
        user's notices (replayed after the notice `after`); `max_rate`: messages per second per
        subscription. Use `async with client.live(...) as live: async for message in live: ...`."""
        stream = LiveStream(
            self,
            board=board,
            around=around,
            ranks=ranks,
            notifications=notifications,
            after=after,
            max_rate=max_rate,
            heartbeat=heartbeat,
        )
        self._streams.add(stream)
        return stream

    def forget_stream(self, stream: LiveStream) -> None:
        """A live stream closed: the client no longer closes it."""
        self._streams.discard(stream)

    def backoff(self) -> Backoff:
        """A fresh backoff with the client's settings."""
        return Backoff(base=self.backoff_base, cap=self.backoff_cap)

    def live_url(self) -> URL:
        """The WebSocket's address."""
        scheme = {"http": "ws", "https": "wss"}.get(self.base_url.scheme, self.base_url.scheme)
        return self._url("/ws/scoreboard").with_scheme(scheme)

    # Requests.

    def _url(self, path: str) -> URL:
        return URL(str(self.base_url) + path, encoded=True)

    async def _get(
        self, path: str, data_type: type[T], *, params: Mapping[str, Any] | None = None, auth: Auth = None
    ) -> T:
        return await self._call("GET", path, data_type, params=params, auth=auth, retry=True)

    async def _call(
        self,
        method: str,
        path: str,
        data_type: type[T],
        *,
        accepted: type[A] | None = None,
        params: Mapping[str, Any] | None = None,
        body: msgspec.Struct | None = None,
        auth: Auth = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = False,
    ) -> T | A:
        """One API call's `data` (of `accepted`'s type when the server answers 202); the error's
        exception otherwise. With `retry`, the same request again after a connection failure, up to
        `retries` times."""
        sent = dict(headers or {})
        credential = {"user": self.token, "service": self.service_key}.get(auth) if auth else None
        if credential:
            sent["Authorization"] = f"Bearer {credential}"
        payload = None
        if body is not None:
            payload = msgspec.json.encode(body)
            sent["Content-Type"] = JSON
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        backoff = self.backoff()
        while True:
            try:
                return await self._once(
                    method=method,
                    path=path,
                    data_type=data_type,
                    accepted=accepted,
                    query=query,
                    payload=payload,
                    headers=sent,
                )
            except (aiohttp.ClientConnectionError, TimeoutError):
                if not retry or backoff.attempts >= self.retries:
                    raise
            await asyncio.sleep(backoff.next_delay())

    async def _once(
        self,
        *,
        method: str,
        path: str,
        data_type: type[T],
        accepted: type[A] | None,
        query: dict[str, str],
        payload: bytes | None,
        headers: dict[str, str],
    ) -> T | A:
        async with self.session().request(
            method, self._url(path), params=query, data=payload, headers=headers, timeout=self.timeout
        ) as answer:
            raw = await answer.read()
            if answer.status < 400:
                kind: type[T] | type[A] = accepted if accepted is not None and answer.status == 202 else data_type
                try:
                    data: T | A = _decoder(kind).decode(raw).data
                except msgspec.DecodeError:
                    raise _unexpected(answer.status, raw) from None
                return data
            raise _refusal(answer, raw)


def _without_resends(session: aiohttp.ClientSession) -> aiohttp.ClientSession:
    """The session, no longer sending a GET or DELETE again by itself after a disconnect."""
    # aiohttp resends an idempotent method once when the server drops the connection (its own test
    # client turns that off the same way, there being no public switch; the flag exists from aiohttp
    # 3.11, the floor in pyproject.toml): on top of the client's retries that doubled every read and
    # sent the DELETEs documented as not retried twice.
    session._retry_connection = False
    return session


def _refusal(answer: aiohttp.ClientResponse, raw: bytes) -> ScoreboardError:
    """The exception of an error answer (its envelope's code), or UnexpectedResponse without one."""
    try:
        error = _errors.decode(raw).error
    except msgspec.DecodeError:
        return _unexpected(answer.status, raw)
    return make_error(answer.status, error.code, error.message, error.details, answer.headers)


def _unexpected(status: int, raw: bytes) -> UnexpectedResponse:
    text = raw[:200].decode(errors="replace")
    return UnexpectedResponse(status, "UNEXPECTED_RESPONSE", f"not an API answer: {text!r}")


async def _sleep_until(deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))
