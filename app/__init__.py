"""Scoreboard: a real-time leaderboard service. `create_app(config)` assembles it."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp_jinja2
import asyncpg
import jinja2
from aiohttp import web

from .addresses import parse_networks
from .api.admin_session import AdminSessions
from .api.edge import edge, envelope_protocol_errors
from .api.envelope import public_cache_control
from .api.keys import (
    ADMIN_SESSIONS,
    ADMISSION,
    ATTESTATIONS,
    AUDIT_HEAD,
    BOARD_ADMIN,
    BOARD_READS,
    CONFIG,
    HELD,
    HUB,
    INITIALIZE_LIMITER,
    METRICS,
    MODERATION,
    OPENAPI,
    OVERTAKES,
    PERSONAL_DATA,
    READ_CACHE_CONTROL,
    SCOREBOARD,
    SERVICE_KEYS,
    STORE,
    TRUSTED_PROXIES,
    TRUSTED_WRITES,
    UPDATE_LIMITER,
    USER_AUTH,
)
from .api.openapi import encode_openapi
from .api.routes import ENDPOINTS, setup_routes, site
from .api.routes.endpoint import Endpoint
from .attestations import Attestations
from .audit.head import AuditHead
from .audit.sealer import Sealer
from .auth import UserAuth
from .boards.admin import BoardAdmin
from .boards.catalog import Catalog, settings_text
from .boards.reads import BoardReads
from .boards.trusted import ServiceKeys, TrustedWrites
from .clock import now_ms
from .config import Config
from .drain import handler_seconds
from .errors import ServiceUnavailable
from .fanout import Fanout
from .flights import InFlight
from .held import HeldAwards, held_backoff
from .identity import ProviderKeys
from .live.admission import Admission
from .live.hub import Hub
from .live.keepalive import Keepalive
from .logs import quiet_client_errors, redact_access_queries
from .metrics.export import Exporter, Sources
from .metrics.listener import admin_listener
from .metrics.tally import HttpTally
from .moderation import Moderation
from .overtakes import Overtakes
from .placing import Placer
from .privacy import PersonalData
from .ranking import Ranking
from .ranking.redis import RedisRanking
from .retention import Retention
from .service import Scoreboard
from .storage import StorageUnusable, Store
from .tasks import Background, CleanupContext, pause, running
from .tokens import ActionTokens
from .top_cache import TopCache
from .tracing import Spans, active, request_middlewares
from .wiring import Parts, build_parts

__version__ = "0.1.0"

log = logging.getLogger(__name__)
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
TOKEN_PURGE_SECONDS = 60.0


async def _storage_ctx(app: web.Application) -> AsyncIterator[None]:
    store, storage = app[STORE], app[CONFIG].storage
    where = "PostgreSQL" if storage.database_url else storage.sqlite_path  # (the URL may hold a password)
    try:
        await store.open()
    except (OSError, TimeoutError, sqlite3.DatabaseError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StorageUnusable(f"cannot open the database ({where}): {exc}") from None
    except ServiceUnavailable as exc:  # a restore holds the SQLite file
        raise StorageUnusable(f"cannot open the database ({where}): {exc.message}") from None
    try:
        yield
    finally:
        await store.close()


async def _close_sockets(app: web.Application) -> None:
    # The drain (app/drain.py): every WebSocket is told to reconnect elsewhere. Not awaited here:
    # the close handshakes run alongside the requests still in flight, within the same deadline.
    hub = app[HUB]
    log.info("closing %d WebSockets with 1012 (service restart)", len(hub.registry.connections))
    hub.drain(within=handler_seconds(app[CONFIG].server.drain_seconds))


async def _admission_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    # Connections that ended during shutdown give their places back before Redis is closed: a
    # release sent after that would open a connection nobody closes.
    await app[HUB].finished()
    await app[ADMISSION].released()


async def _purge(store: Store, keys_kept_ms: int, overtakes: Overtakes, retention: Retention) -> None:
    # Expired tokens are refused by their `exp` before the database is asked, so their rows
    # are dead weight; the unique nonce in score_history still guards against any replay.
    # Idempotency-Keys answer retries for limits.idempotency_hours, then go, and so do attestations
    # no award spent; notices after 7 days; the award history after storage.history_retention_days.
    while True:
        await pause(TOKEN_PURGE_SECONDS)
        try:
            purged = await store.purge_tokens(now_ms() - 60_000)
            if purged:
                log.info("purged %d expired action tokens", purged)
            forgotten = await store.purge_keys(now_ms() - keys_kept_ms)
            if forgotten:
                log.info("forgot %d Idempotency-Keys", forgotten)
            if unspent := await store.purge_attestations(now_ms() - keys_kept_ms):
                log.info("forgot %d attestations no award spent", unspent)
            if aged := await overtakes.purge():
                log.info("purged %d notices past their kept time", aged)
            if old := await retention.purge():
                log.info("purged %d history rows past storage.history_retention_days", old)
        except Exception:
            log.exception("token purge failed")


def _overtakes_ctx(overtakes: Overtakes) -> CleanupContext:
    """At shutdown, the notices of the writes placed so far are kept and sent before the store
    and Redis close."""

    async def notices(app: web.Application) -> AsyncIterator[None]:
        yield
        await overtakes.finished()

    return notices


def _boards_ctx(config: Config, admin: BoardAdmin, ranking: Ranking) -> CleanupContext:
    """Once the store is open: the configuration's boards applied to the database, then the
    catalog read from it (boards operators made at run time included). A board whose settings the
    configuration replaced is loaded into the shared ranking again: Redis holds it as it was (another
    order), or not at all (a retired board, its keys swept)."""

    async def boards(app: web.Application) -> AsyncIterator[None]:
        replaced = await app[STORE].declare_boards({name: settings_text(s) for name, s in config.boards.items()})
        await admin.refresh()
        if replaced and isinstance(ranking, RedisRanking):
            log.info("boards %s replaced by the configuration: the ranking loads again", replaced)
            ranking.stale = True  # this process's keeper loads it from the database at start
        yield

    return boards


def _identity_ctx(keys: ProviderKeys) -> CleanupContext:
    """The identity provider's keys, fetched at once and then every auth.jwks_refresh_seconds,
    without holding up the start: a token that needs them waits for the fetch under way."""
    refresh = Background("identity-keys", keys.run)

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        refresh.start()
        yield
        await refresh.stop()
        await keys.close()

    return lifetime


def _subscribe(fanout: Fanout, tops: TopCache, hub: Hub) -> None:
    """Every listener to the awards of all processes, in one place."""
    fanout.subscribe(tops.on_award)
    fanout.subscribe(hub.on_award)
    fanout.on_gap(tops.changed)  # after a gap nothing is known
    fanout.on_gap(hub.resync)
    fanout.on_notices(hub.on_notices)
    fanout.on_shrink(tops.changed)
    fanout.on_shrink(hub.shrank)


def _exporter(
    parts: Parts, scoreboard: Scoreboard, hub: Hub, admission: Admission, http: HttpTally, *, overtakes: Overtakes
) -> Exporter:
    """The metrics of this app, read from the tallies and parts they count in."""
    limiters = {
        "ip_requests_per_minute": parts.ip_limiter,
        "updates_per_minute": parts.update_limiter,
        "initializes_per_minute": parts.initialize_limiter,
        "ws_handshakes_per_ip_per_minute": parts.handshake_limiter,
        **{f"actions.{name}.rate_limit": limiter for name, limiter in parts.action_limiters.items()},
    }
    return Exporter(
        Sources(
            http=http,
            scoreboard=scoreboard,
            connections=hub.registry,
            subscriptions=hub.subscriptions,
            waves=hub.tally,
            admission=admission,
            limiters=limiters,
            store=parts.store,
            ranking=parts.ranking,
            activity=parts.activity,
            overtakes=overtakes,
            redis=parts.redis,
            redis_trips=parts.trips.round_trips if parts.trips is not None else None,
        )
    )


def _metrics(app: web.Application, exporter: Exporter, reuse_port: bool) -> list[CleanupContext]:
    """Serve the exporter's metrics (on the main port, where the route table has them, or on a
    listener of their own) and flush them while the app runs."""
    app[METRICS] = exporter
    settings = app[CONFIG].metrics
    contexts = [running(Background("metrics", exporter.run))]
    if not settings.on_main_port:
        contexts.insert(0, admin_listener(exporter, settings, reuse_port=reuse_port))
    return contexts


def _endpoints(config: Config) -> tuple[Endpoint, ...]:
    """The routes this server serves on its port: with /metrics when the metrics are there."""
    on_main_port = config.metrics.enabled and config.metrics.on_main_port
    return (*ENDPOINTS, site.METRICS) if on_main_port else ENDPOINTS


def _trust_and_safety(
    app: web.Application, parts: Parts, placer: Placer, catalog: Catalog, clock: Callable[[], int]
) -> None:
    """Trusted servers' attestations, operators' decisions on the awards cheat rules held, their
    moderation, and the audit chain's head for their page."""
    admin_role = app[CONFIG].auth.admin_role
    app[ATTESTATIONS] = Attestations(parts.store, clock)
    app[AUDIT_HEAD] = AuditHead(parts.store, admin_role)
    app[HELD] = HeldAwards(store=parts.store, catalog=catalog, placer=placer, admin_role=admin_role, clock=clock)
    app[MODERATION] = Moderation(
        store=parts.store,
        ranking=parts.ranking,
        catalog=catalog,
        fanout=parts.fanout,
        placer=placer,
        admin_role=admin_role,
        clock=clock,
    )


def create_app(config: Config, *, reuse_port: bool = False, clock: Callable[[], int] = now_ms) -> web.Application:
    """Assemble the application from a validated configuration (`reuse_port`: one of the processes
    of `--workers N`, which share the metrics' port too; `clock`: ms since the epoch, which decides
    the period every write counts in, injected by tests that cross a period's end)."""
    redact_access_queries()
    quiet_client_errors()
    envelope_protocol_errors()
    catalog = Catalog(config.server.default_board, config.boards)
    parts = build_parts(config, catalog, clock)
    trusted = parse_networks(config.server.trusted_proxies)
    # Traced (`app.tracing.start` ran in this process): aiohttp's instrumentation makes this class
    # open a span per request, and the service marks the award's steps.
    app = web.Application(client_max_size=config.server.max_body_bytes, middlewares=request_middlewares())
    spans = Spans(active())
    overtakes = Overtakes(parts.ranking, parts.store, parts.fanout, clock)
    in_flight = InFlight(catalog, clock, parts.flights)
    placer = Placer(parts.ranking, parts.fanout, parts.tops, spans, placed=overtakes.on_write, in_flight=in_flight)
    scoreboard = Scoreboard(
        store=parts.store,
        ranking=parts.ranking,
        tokens=ActionTokens(
            config.secrets.action,
            previous=config.secrets.action_previous,
            ttl_seconds=config.tokens.ttl_seconds,
            clock=clock,
        ),
        actions=config.actions,
        catalog=catalog,
        placer=placer,
        gate=parts.gate,
        tokens_per_user=config.limits.tokens_per_user,
        activity=parts.activity if config.metrics.enabled else None,
        spans=spans,
        action_limiters=parts.action_limiters,
        backoff=held_backoff(config.limits),
        clock=clock,
    )
    hub = Hub(
        parts.ranking,
        parts.slots,
        catalog,
        clock,
        max_buffer=config.websocket.send_buffer_bytes,
        kept=overtakes.kept,
        in_flight=in_flight,
    )
    _subscribe(parts.fanout, parts.tops, hub)
    app[OVERTAKES] = overtakes
    app[PERSONAL_DATA] = PersonalData(
        store=parts.store,
        ranking=parts.ranking,
        catalog=catalog,
        fanout=parts.fanout,
        admin_role=config.auth.admin_role,
        clock=clock,
    )
    app[CONFIG] = config
    app[STORE] = parts.store
    app[SCOREBOARD] = scoreboard
    reads = app[BOARD_READS] = BoardReads(catalog, parts.ranking, parts.store, parts.tops, clock)
    admin = app[BOARD_ADMIN] = BoardAdmin(
        store=parts.store,
        catalog=catalog,
        reads=reads,
        actions=config.actions,
        admin_role=config.auth.admin_role,
    )
    app[TRUSTED_WRITES] = TrustedWrites(catalog, parts.store, parts.ranking, placer, clock)
    app[SERVICE_KEYS] = ServiceKeys(config.services)
    _trust_and_safety(app, parts, placer, catalog, clock)
    app[HUB] = hub
    admission = app[ADMISSION] = Admission(
        per_process=config.limits.ws_connections_per_process,
        ip_slots=parts.ip_slots,
        handshakes=parts.handshake_limiter,
    )
    auth = app[USER_AUTH] = UserAuth.for_config(config)
    app[UPDATE_LIMITER] = parts.update_limiter
    app[INITIALIZE_LIMITER] = parts.initialize_limiter
    app[READ_CACHE_CONTROL] = public_cache_control(config.server.read_cache_seconds)
    endpoints = _endpoints(config)
    app[OPENAPI] = encode_openapi(
        endpoints,
        version=__version__,
        actions=tuple(config.actions),
        admin_role=config.auth.admin_role,
        idempotency_hours=config.limits.idempotency_hours,
    )
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True)
    app[TRUSTED_PROXIES] = trusted
    app[ADMIN_SESSIONS] = AdminSessions(
        auth, admin_role=config.auth.admin_role, secret=config.secrets.action, trusted=trusted
    )
    http = HttpTally() if config.metrics.enabled else None
    wrap = edge(parts.ip_limiter, trusted, http)
    metrics = (
        []
        if http is None
        else _metrics(app, _exporter(parts, scoreboard, hub, admission, http, overtakes=overtakes), reuse_port)
    )
    setup_routes(app, wrap, endpoints)
    keepalive = Keepalive(hub.registry, config.websocket.heartbeat_seconds)
    live = running(Background("hub-waves", hub.run, halt=hub.stop), Background("keepalive", keepalive.run))
    kept_ms = config.limits.idempotency_hours * 3_600_000
    purge = running(
        Background(
            "token-purge",
            lambda: _purge(
                parts.store, kept_ms, overtakes, Retention(parts.store, config.storage.history_retention_days, clock)
            ),
        ),
        Background("board-catalog", admin.run),
        Background("audit-sealer", Sealer(parts.store).run),
    )
    identity = [] if auth.provider is None else [_identity_ctx(auth.provider)]
    app.cleanup_ctx.extend(
        [
            _storage_ctx,
            _boards_ctx(config, admin, parts.ranking),
            *parts.contexts,
            _overtakes_ctx(overtakes),
            purge,
            live,
            _admission_ctx,
            *metrics,
            *identity,
        ]
    )
    app.on_shutdown.append(_close_sockets)
    return app
