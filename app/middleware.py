"""Request middleware: correlation id and access log, the error envelope, the per-IP limit."""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
import time
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Handler

from .envelope import failure, from_error
from .errors import HTTP_CODES, ApiError
from .keys import IP_LIMITER, TRUSTED_PROXIES, IpNetwork
from .logs import request_id

access_log = logging.getLogger("scoreboard.access")
log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


def parse_networks(entries: Sequence[str]) -> tuple[IpNetwork, ...]:
    """Trusted proxy addresses or CIDR ranges (already validated by the config)."""
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def client_ip(peer: str | None, forwarded_for: str | None, trusted: tuple[IpNetwork, ...]) -> str:
    """The client's address: the peer, or behind trusted proxies the last untrusted X-Forwarded-For hop."""
    peer = peer or "unknown"
    if not trusted or not forwarded_for or not _is_trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _is_trusted(address: str, trusted: tuple[IpNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


@web.middleware
async def context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Assign the correlation id, echo it, and write one JSON access-log line per request."""
    incoming = request.headers.get("X-Request-ID", "")
    rid = incoming if _REQUEST_ID.fullmatch(incoming) else secrets.token_hex(8)
    token = request_id.set(rid)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers["X-Request-ID"] = rid
        return response
    finally:
        # The path only: a query string may carry a token and never reaches the log.
        access_log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "remote": request.remote,
                "correlationId": rid,
            },
        )
        request_id.reset(token)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every failure in the contract's envelope; unknown ones as a bare 500."""
    try:
        return await handler(request)
    except ApiError as exc:
        return from_error(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
        code = HTTP_CODES.get(exc.status, "HTTP_ERROR")
        return failure(exc.status, code, exc.reason, headers=headers)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return failure(500, "INTERNAL_ERROR", "Internal server error")


@web.middleware
async def ip_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request under /api/ counts against its client IP's limit."""
    if request.path.startswith("/api/"):
        trusted = request.app[TRUSTED_PROXIES]
        ip = client_ip(request.remote, request.headers.get("X-Forwarded-For"), trusted)
        await request.app[IP_LIMITER].check(ip)
    return await handler(request)


MIDDLEWARES = (context_middleware, error_middleware, ip_limit_middleware)  # outermost first
