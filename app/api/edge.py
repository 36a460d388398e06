"""The request edge: correlation id, the client's address, the per-IP limit, the error envelope, the access log.

Wrapped around each route's handler rather than installed as aiohttp middleware: any middleware
makes aiohttp build a handler chain and enter a current-app context manager on every request,
about a sixth of a fast request."""

from __future__ import annotations

import functools
import itertools
import logging
import os
import re
import time
from bisect import bisect_left
from collections.abc import Callable
from http import HTTPStatus

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict, istr

from ..addresses import UNKNOWN, IpNetwork, client_ip, limit_key
from ..errors import HTTP_CODES, ApiError
from ..limits import Limiter
from ..logs import access_log, log_access, request_id
from ..metrics.tally import HttpTally
from .envelope import failure, from_error

log = logging.getLogger(__name__)

# Set here rather than in an on_response_prepare signal, which costs a fifth of a fast request.
# Names as istr: a plain str is case-folded again on every request.
SECURITY_HEADERS = [(istr("X-Content-Type-Options"), "nosniff"), (istr("Referrer-Policy"), "no-referrer")]
_X_REQUEST_ID = istr("X-Request-ID")
_AUTHORIZATION = istr("Authorization")
_READS = frozenset({"GET", "HEAD"})
_READ_OK = frozenset({200, 304})
_X_FORWARDED_FOR = istr("X-Forwarded-For")
_CSP = istr("Content-Security-Policy")
# Pages load only their own scripts and styles, talk and post forms (the operator page's) only to
# this origin, and cannot be framed.
CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
LIMITED_PREFIX = "/api/"  # every request under it counts against the per-IP limit, before anything else
UPGRADED = 101  # a WebSocket: its "request" lasts as long as the connection, no latency to count


class _RequestIds:
    """A random per-process prefix and a counter: unique without a system call per request."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = os.urandom(4).hex()
        self.counter = itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.counter) & 0xFFFFFFFF:08x}"


new_request_id = _RequestIds()  # 16 characters, unique across processes and restarts
os.register_at_fork(after_in_child=new_request_id.reset)


def stamp(headers: CIMultiDict[str], rid: str) -> None:
    """The headers every answer carries (its request id, the security headers; on a page, the
    CSP), set on a response before it starts."""
    headers[_X_REQUEST_ID] = rid
    headers.update(SECURITY_HEADERS)  # replaces, never duplicates
    if headers.get(hdrs.CONTENT_TYPE, "").startswith("text/html"):
        headers[_CSP] = CSP


def client_address(request: web.Request, trusted: tuple[IpNetwork, ...]) -> str:
    """The client's address: the socket's peer, or behind trusted proxies the nearest hop of
    X-Forwarded-For that is not one of them."""
    peer = request.remote
    if trusted:
        peer = client_ip(peer, request.headers.getall(_X_FORWARDED_FOR, ()), trusted)
    return peer or UNKNOWN


def edge(
    limiter: Limiter, trusted: tuple[IpNetwork, ...], http: HttpTally | None = None
) -> Callable[[Handler, str], Handler]:
    """A wrapper giving a handler the edge of every request: correlation id, the per-IP limit
    under /api/, the error envelope, one access-log line, and (with `http`) the route's tally."""

    def wrap(handler: Handler, route: str) -> Handler:
        tally = http.route(route) if http is not None else None

        @functools.wraps(handler)
        async def at_edge(request: web.Request) -> web.StreamResponse:
            incoming = request.headers.get(_X_REQUEST_ID)
            rid = incoming if incoming is not None and _REQUEST_ID.fullmatch(incoming) else new_request_id()
            token = request_id.set(rid)
            started = time.perf_counter()
            status = 500
            client = None  # resolved only where it is needed: most requests are never logged
            try:
                try:
                    if request.path.startswith(LIMITED_PREFIX):
                        client = client_address(request, trusted)
                        await limiter.check(limit_key(client))
                    response = await handler(request)
                except ApiError as exc:
                    response = from_error(exc)
                    _count_error(http, exc.code)
                except web.HTTPException as exc:
                    if exc.status < 400:
                        raise
                    response = _http_failure(exc)
                    _count_error(http, HTTP_CODES.get(exc.status, "HTTP_ERROR"))
                except Exception:
                    log.exception("unhandled error on %s %s", request.method, request.path)
                    response = failure(500, "INTERNAL_ERROR", "Internal server error")
                    _count_error(http, "INTERNAL_ERROR")
                status = response.status
                if not response.prepared:  # event streams and WebSockets set their own headers when they start
                    stamp(response.headers, rid)
                return response
            finally:
                if tally is not None:
                    # Inline, no call: this runs on every request.
                    tally.statuses[status] = tally.statuses.get(status, 0) + 1
                    if status != UPGRADED:
                        took = time.perf_counter() - started
                        latency = tally.latency
                        latency.counts[bisect_left(latency.bounds, took)] += 1
                        latency.total += took
                # Successful reads of public data (the top, health, static files, documentation)
                # are most of the traffic and need no audit trail: DEBUG. Writes, requests with
                # credentials, upgrades and every refusal or error: INFO.
                public_read = status in _READ_OK and request.method in _READS and _AUTHORIZATION not in request.headers
                level = logging.DEBUG if public_read else logging.INFO
                if access_log.isEnabledFor(level):
                    peer = request.remote
                    client = client or client_address(request, trusted)
                    # The path only: a query string may carry a token and never reaches the log.
                    log_access(
                        level=level,
                        method=request.method,
                        path=request.path,
                        status=status,
                        duration_ms=round((time.perf_counter() - started) * 1000, 2),
                        remote=client,
                        peer=peer if peer != client else None,
                        rid=rid,
                    )
                request_id.reset(token)

        return at_edge

    return wrap


def _count_error(http: HttpTally | None, code: str) -> None:
    if http is not None:
        http.errors[code] += 1


def _http_failure(exc: web.HTTPException) -> web.Response:
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
    return failure(exc.status, HTTP_CODES.get(exc.status, "HTTP_ERROR"), exc.reason, headers=headers)


async def expect_continue(request: web.Request) -> web.StreamResponse | None:
    """Answer `Expect: 100-continue` as aiohttp does; refuse any other expectation in the envelope
    (aiohttp's own refusal is a text/plain 417, given before any middleware: the edge never sees it)."""
    if request.headers.get(hdrs.EXPECT, "").lower() == "100-continue":
        length = request.content_length
        if length is not None and length > request.client_max_size:
            # No 100 Continue: the body is not wanted, and the route refuses it, unread, at its edge.
            return None
        if request.version >= (1, 1):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the interim answer is no part of the response's size
        return None
    return failure(
        400,
        "VALIDATION_ERROR",
        "Only `Expect: 100-continue` is understood",
        details={"header": "Expect"},
        headers=dict(SECURITY_HEADERS),
    )


def envelope_protocol_errors() -> None:
    """Answer requests that aiohttp cannot parse in the envelope too; idempotent.

    A request line or header over aiohttp's limits, or a header with a NUL byte, is refused by its
    protocol layer before any route or edge runs, in text/plain and echoing the start of the
    offending line. aiohttp has no hook for that answer (aio-libs/aiohttp#3287), so its
    RequestHandler.handle_error is wrapped: aiohttp still logs (one INFO line: app/logs.py) and
    closes the connection as before, and the client gets `{"success": false, "error": ...}` instead of the text."""
    plain = RequestHandler.handle_error
    if getattr(plain, "enveloped", False):
        return

    @functools.wraps(plain)
    def handle_error(
        self: RequestHandler,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        plain(self, request, status, exc, message)  # logs; raises when an answer has already begun
        code = HTTP_CODES.get(status, "INTERNAL_ERROR")
        text = "Internal server error" if status >= 500 else HTTPStatus(status).phrase
        response = failure(status, code, text, headers=dict(SECURITY_HEADERS))
        response.force_close()
        return response

    handle_error.enveloped = True  # type: ignore[attr-defined]
    RequestHandler.handle_error = handle_error  # type: ignore[method-assign]
