"""`GET /api/v1/boards/{board}/stream`: a board's leaderboard channel as Server-Sent Events."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import HttpVersion11, hdrs, web

from ..errors import ApiError, ServiceUnavailable
from ..live import streams
from ..live.connections import CLOSE_WAIT_SECONDS
from ..logs import request_id
from .board_data import BoardPath
from .edge import client_address, stamp
from .keys import ADMISSION, HUB, TRUSTED_PROXIES
from .live_data import StreamHeaders, StreamQuery
from .views import headers_of, path_of, query_of

log = logging.getLogger(__name__)

HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # proxies that buffer responses would hold the events back
}


async def board_stream(request: web.Request) -> web.StreamResponse:
    """Stream a board's top 10: a snapshot, then every change, until the client goes or the
    process drains. Refusals (unknown board, bad input, limits) are answered before it starts."""
    hub = request.app[HUB]
    board = hub.board_of(path_of(request, BoardPath).board)
    query, headers = query_of(request, StreamQuery), headers_of(request, StreamHeaders)
    if hub.draining:
        raise ServiceUnavailable("This server is restarting", headers={"Retry-After": "1"})
    async with request.app[ADMISSION].admitted(client_address(request, request.app[TRUSTED_PROXIES])):
        if request.method == hdrs.METH_HEAD:  # the headers a GET would start with, and no body
            return web.Response(headers=HEADERS)
        response = web.StreamResponse(headers=HEADERS)
        if request.version < HttpVersion11:
            # Its body ends with the connection: the connection must end with it, keep-alive or not.
            response.force_close()
        stamp(response.headers, request_id.get() or "")  # started here, not by the edge
        chunked = await streams.start(response, request)
        conn = hub.stream(request.transport, chunked=chunked)
        try:
            await hub.subscribe(conn, board, query.max_rate, seq=headers.last_event_id or 0)
            await conn.ended.wait()
        except ApiError:
            # Started: no error answer can follow. The stream ends and the client reconnects.
            log.warning("event stream of %s ended: its board could not be read", board, exc_info=True)
        finally:
            hub.disconnect(conn)
        transport = request.transport
        if transport is not None and not transport.is_closing():
            try:  # the end of the body; a client that stopped reading is cut instead of waited for
                await asyncio.wait_for(response.write_eof(), CLOSE_WAIT_SECONDS)
            except TimeoutError:
                transport.abort()
        return response
