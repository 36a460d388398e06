"""The live side's routes: the live page, its WebSocket and a board's event stream."""

from __future__ import annotations

from ... import errors as e
from .. import examples as x
from .. import session, stream, views
from ..board_data import BoardPath
from ..live_data import LiveQuery, PageQuery, StreamHeaders, StreamQuery
from .endpoint import Endpoint

PAGE = Endpoint(
    method="GET",
    path="/",
    handler=views.page,
    example=x.PAGE,
    summary="The live top-10 page of a board (`?board=`, default the default board) with a tab per "
    "board and a period selector: rendered on the server, kept live over the WebSocket",
    media="text/html",
    query=PageQuery,
    tag="web",
)

WEBSOCKET = Endpoint(
    method="GET",
    path="/ws/scoreboard",
    handler=session.websocket,
    summary="WebSocket of live updates: 101 on a handshake, then the messages of docs/live.md "
    f"(an invalid `token` closes with {e.CLOSE_UNAUTHORIZED}); a request that is not a handshake answers 400",
    status=101,
    media=None,
    query=LiveQuery,
    errors=(e.ValidationFailed, e.Forbidden, e.RateLimited, e.ServiceUnavailable),
    tag="web",
)

STREAM = Endpoint(
    method="GET",
    path="/api/v1/boards/{board}/stream",
    handler=stream.board_stream,
    example=x.STREAM,
    summary="The board's leaderboard channel as Server-Sent Events, for clients that cannot hold a "
    "WebSocket: `id:` the message's seq, `event:` its type, `data:` the whole message as the WebSocket "
    "sends it. It starts with a `leaderboard_update` snapshot, then every change of the top 10 or of its "
    "`total` of entries (bursts coalesced, the latest state always sent) and `period_ended`; `: keepalive` "
    "comments keep it open. A reconnect with `Last-Event-ID` goes on from the next id with a fresh snapshot. The same connection limits as "
    "the WebSocket; a client too far behind is cut off",
    media="text/event-stream",
    query=StreamQuery,
    path_params=BoardPath,
    headers=StreamHeaders,
    errors=(e.BoardNotFound, e.ValidationFailed, e.RateLimited, e.ServiceUnavailable),
    tag="boards",
)
