"""Scoreboard: a real-time leaderboard service. `create_app(config)` assembles it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from .addresses import parse_networks
from .admission import Admission
from .auth import UserAuth
from .backends import STOP_SECONDS, build_parts
from .clock import now_ms
from .config import Config
from .edge import edge, envelope_protocol_errors
from .hub import Hub
from .keepalive import Keepalive
from .keys import (
    ADMISSION,
    CONFIG,
    HUB,
    INITIALIZE_LIMITER,
    OPENAPI,
    SCOREBOARD,
    STORE,
    TRUSTED_PROXIES,
    UPDATE_LIMITER,
    USER_AUTH,
)
from .logs import redact_access_queries
from .openapi import encode_openapi
from .routes import ENDPOINTS, setup_routes
from .scoreboard import Scoreboard
from .storage import Store
from .tokens import ActionTokens

__version__ = "0.1.0"

log = logging.getLogger(__name__)
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
TOKEN_PURGE_SECONDS = 60.0


async def _storage_ctx(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]
    await store.open()
    try:
        yield
    finally:
        await store.close()


async def _hub_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    task = asyncio.create_task(hub.run(), name="hub-waves")
    keepalive = Keepalive(hub, app[CONFIG].websocket.heartbeat_seconds)
    pings = asyncio.create_task(keepalive.run(), name="keepalive")
    yield
    pings.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pings
    # A flag as well as the cancellation: redis-py can swallow a cancellation mid-call.
    hub.stop()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=STOP_SECONDS)
    if not done:
        log.error("hub did not stop")


async def _close_sockets(app: web.Application) -> None:
    await app[HUB].close_all()


async def _admission_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    # Connections that ended during shutdown give their places back before Redis is closed: a
    # release sent after that would open a connection nobody closes.
    await app[ADMISSION].released()


async def _purge_loop(store: Store) -> None:
    # Expired tokens are refused by their `exp` before the database is asked, so their rows
    # are dead weight; the unique nonce in score_history still guards against any replay.
    while True:
        await asyncio.sleep(TOKEN_PURGE_SECONDS)
        try:
            purged = await store.purge_tokens(now_ms() - 60_000)
            if purged:
                log.info("purged %d expired action tokens", purged)
        except Exception:
            log.exception("token purge failed")


async def _purge_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_purge_loop(app[STORE]), name="token-purge")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(config: Config) -> web.Application:
    """Assemble the application from a validated configuration."""
    redact_access_queries()
    envelope_protocol_errors()
    parts = build_parts(config)
    trusted = parse_networks(config.server.trusted_proxies)
    app = web.Application(client_max_size=config.server.max_body_bytes)
    scoreboard = Scoreboard(
        store=parts.store,
        board=parts.board,
        tokens=ActionTokens(
            config.secrets.action,
            previous=config.secrets.action_previous,
            ttl_seconds=config.tokens.ttl_seconds,
        ),
        actions=config.actions,
        fanout=parts.fanout,
        gate=parts.gate,
        tokens_per_user=config.limits.tokens_per_user,
    )
    hub = Hub(parts.board, parts.slots, max_buffer=config.websocket.send_buffer_bytes)
    parts.fanout.subscribe(hub.on_award)
    parts.fanout.on_gap(hub.resync)
    app[CONFIG] = config
    app[STORE] = parts.store
    app[SCOREBOARD] = scoreboard
    app[HUB] = hub
    app[ADMISSION] = Admission(
        per_process=config.limits.ws_connections_per_process,
        ip_slots=parts.ip_slots,
        handshakes=parts.handshake_limiter,
    )
    app[USER_AUTH] = UserAuth.for_config(config)
    app[UPDATE_LIMITER] = parts.update_limiter
    app[INITIALIZE_LIMITER] = parts.initialize_limiter
    app[OPENAPI] = encode_openapi(ENDPOINTS, version=__version__, actions=tuple(config.actions))
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True)
    app[TRUSTED_PROXIES] = trusted
    setup_routes(app, edge(parts.ip_limiter, trusted))

    async def rebuild() -> None:
        await scoreboard.rebuild()
        hub.resync()  # viewers may have missed changes while the board was away

    app.cleanup_ctx.extend([_storage_ctx, *parts.contexts(rebuild), _purge_ctx, _hub_ctx, _admission_ctx])
    app.on_shutdown.append(_close_sockets)
    return app
