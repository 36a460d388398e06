"""Scoreboard: a real-time leaderboard service. `create_app(config)` assembles it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from .addresses import parse_networks
from .api.edge import edge, envelope_protocol_errors
from .api.envelope import public_cache_control
from .api.keys import (
    ADMISSION,
    CONFIG,
    HUB,
    INITIALIZE_LIMITER,
    OPENAPI,
    READ_CACHE_CONTROL,
    SCOREBOARD,
    STORE,
    TRUSTED_PROXIES,
    UPDATE_LIMITER,
    USER_AUTH,
)
from .api.openapi import encode_openapi
from .api.routes import ENDPOINTS, setup_routes
from .auth import UserAuth
from .clock import now_ms
from .config import Config
from .fanout import Fanout
from .live.admission import Admission
from .live.hub import Hub
from .live.keepalive import Keepalive
from .logs import redact_access_queries
from .service import Scoreboard
from .storage import Store
from .tasks import Background, running
from .tokens import ActionTokens
from .top_cache import TopCache
from .wiring import build_parts

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


async def _close_sockets(app: web.Application) -> None:
    await app[HUB].close_all()


async def _admission_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    # Connections that ended during shutdown give their places back before Redis is closed: a
    # release sent after that would open a connection nobody closes.
    await app[ADMISSION].released()


async def _purge(store: Store) -> None:
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


def _subscribe(fanout: Fanout, tops: TopCache, hub: Hub) -> None:
    """Every listener to the awards of all processes, in one place."""
    fanout.subscribe(tops.on_award)
    fanout.subscribe(hub.on_award)
    fanout.on_gap(tops.changed)  # after a gap nothing is known
    fanout.on_gap(hub.resync)


def create_app(config: Config) -> web.Application:
    """Assemble the application from a validated configuration."""
    redact_access_queries()
    envelope_protocol_errors()
    parts = build_parts(config)
    trusted = parse_networks(config.server.trusted_proxies)
    app = web.Application(client_max_size=config.server.max_body_bytes)
    scoreboard = Scoreboard(
        store=parts.store,
        ranking=parts.ranking,
        tokens=ActionTokens(
            config.secrets.action,
            previous=config.secrets.action_previous,
            ttl_seconds=config.tokens.ttl_seconds,
        ),
        actions=config.actions,
        fanout=parts.fanout,
        gate=parts.gate,
        tokens_per_user=config.limits.tokens_per_user,
        tops=parts.tops,
    )
    hub = Hub(parts.ranking, parts.slots, max_buffer=config.websocket.send_buffer_bytes)
    _subscribe(parts.fanout, parts.tops, hub)
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
    app[READ_CACHE_CONTROL] = public_cache_control(config.server.read_cache_seconds)
    app[OPENAPI] = encode_openapi(ENDPOINTS, version=__version__, actions=tuple(config.actions))
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True)
    app[TRUSTED_PROXIES] = trusted
    setup_routes(app, edge(parts.ip_limiter, trusted))
    keepalive = Keepalive(hub.registry, config.websocket.heartbeat_seconds)
    live = running(Background("hub-waves", hub.run, halt=hub.stop), Background("keepalive", keepalive.run))
    purge = running(Background("token-purge", lambda: _purge(parts.store)))
    app.cleanup_ctx.extend([_storage_ctx, *parts.contexts, purge, live, _admission_ctx])
    app.on_shutdown.append(_close_sockets)
    return app
