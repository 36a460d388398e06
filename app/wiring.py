"""Which implementations a configuration gets: embedded (one process) or Redis (+ PostgreSQL) for many."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import msgspec
import redis.asyncio as aioredis
from aiohttp import web

from .boards.catalog import Catalog
from .clock import now_ms
from .config import Config
from .errors import ServiceUnavailable
from .fanout import Fanout
from .fanout.local import LocalFanout
from .fanout.redis import RedisFanout
from .flights import SharedFlights
from .flights.redis import RedisFlights
from .limits import ConnectionSlots, Limiter
from .limits.local import LocalSlots, RateLimiter
from .limits.redis import RedisRateLimiter, RedisSlots
from .metrics.activity import LocalActivity, SharedActivity
from .nonces import NonceGate
from .nonces.open import OpenGate
from .nonces.redis import RedisGate
from .ranking import Ranking
from .ranking.keeper import Keeper
from .ranking.memory import MemoryRanking
from .ranking.redis import RedisRanking
from .ranking.sweep import Sweeper
from .redis_client import Keys, TurnPipeline, connect, database_of
from .settings import PositiveCountWindow
from .storage import Store
from .storage.postgres import PostgresStore
from .storage.sqlite import SqliteStore
from .tasks import Background, CleanupContext, pause, running
from .top_cache import TopCache

log = logging.getLogger(__name__)

LISTEN_SECONDS = 5.0
PRUNE_SECONDS = 60.0
REDIS_TOP_MAX_AGE = 1.0  # a rename in another process is announced to nobody: seen within this


class Parts(msgspec.Struct, kw_only=True):
    """The pieces a deployment mode provides, and what runs them while the app runs."""

    store: Store
    ranking: Ranking
    fanout: Fanout
    gate: NonceGate
    tops: TopCache
    slots: ConnectionSlots  # WebSocket connections per user
    ip_slots: ConnectionSlots  # WebSocket connections per client address
    update_limiter: Limiter
    initialize_limiter: Limiter
    ip_limiter: Limiter
    handshake_limiter: Limiter  # WebSocket handshakes per client address
    action_limiters: dict[str, Limiter]  # updates per user of each action type with a rate_limit
    contexts: list[CleanupContext]  # run once the store is open
    activity: LocalActivity | SharedActivity  # the active users, when the metrics count them
    redis: aioredis.Redis | None = None  # the Redis modes' client (the metrics ping it, read its pool)
    trips: TurnPipeline | None = None  # the award path's shared Redis round trips
    flights: SharedFlights | None = None  # writes under way near a period's end, as every process sees them


def _action_rates(config: Config) -> dict[str, PositiveCountWindow]:
    """The action types that have a rate limit, and their limit."""
    return {name: action.rate_limit for name, action in config.actions.items() if action.rate_limit is not None}


def make_store(config: Config, clock: Callable[[], int] = now_ms) -> Store:
    """The system of record: PostgreSQL when a database URL is set, else the SQLite file; `clock`
    is the service's, which a write's period is checked against as its transaction begins."""
    if config.storage.database_url:
        return PostgresStore(config.storage.database_url, pool_size=config.storage.database_pool_size, clock=clock)
    return SqliteStore(config.storage.sqlite_path, synchronous=config.storage.synchronous, clock=clock)


def embedded(config: Config, store: Store, catalog: Catalog, clock: Callable[[], int]) -> Parts:
    """One process: ranks, limits and fan-out in memory; the ranking filled at start."""
    ranking = MemoryRanking()

    async def filled(app: web.Application) -> AsyncIterator[None]:
        await ranking.exclude_all(await store.disqualified())
        await ranking.fill(store, catalog.shelves(clock()))
        yield

    async def prune() -> None:
        # Finished periods past their keep_periods, and retired boards, leave memory (in Redis a
        # Sweeper unlinks the periods' keys); the database keeps them.
        while True:
            await pause(PRUNE_SECONDS)
            ranking.keep_only(catalog.shelves(clock()))
            await ranking.release()

    return Parts(
        store=store,
        ranking=ranking,
        fanout=LocalFanout(),
        gate=OpenGate(),
        tops=TopCache(),
        slots=LocalSlots(config.limits.ws_connections_per_user),
        ip_slots=LocalSlots(config.limits.ws_connections_per_ip),
        update_limiter=RateLimiter(config.limits.updates_per_minute),
        initialize_limiter=RateLimiter(config.limits.initializes_per_minute),
        ip_limiter=RateLimiter(config.limits.ip_requests_per_minute),
        handshake_limiter=RateLimiter(config.limits.ws_handshakes_per_ip_per_minute),
        action_limiters={
            name: RateLimiter(rate.count, window_s=rate.window_s) for name, rate in _action_rates(config).items()
        },
        contexts=[filled, running(Background("board-prune", prune))],
        activity=LocalActivity(),
    )


def clustered(config: Config, store: Store, catalog: Catalog, clock: Callable[[], int]) -> Parts:
    """Many processes: Redis holds the ranking, nonces, limits and fan-out; the database the truth."""
    limits = config.limits
    client = connect(config.storage.redis_url, pool_size=config.storage.redis_pool_size)
    keys = Keys(config.storage.redis_prefix, db=database_of(client))
    trips = TurnPipeline(client)  # the award path's commands share round trips, one at a time
    ranking, fanout = RedisRanking(client, keys, trips, clock), RedisFanout(client, keys, trips)
    keeper = Keeper(ranking, store, lambda: catalog.shelves(clock()), fanout)
    sweeper = Sweeper(ranking, catalog.fallen, clock)
    slots = RedisSlots(client, keys, "user", limits.ws_connections_per_user)
    ip_slots = RedisSlots(client, keys, "ip", limits.ws_connections_per_ip)

    async def redis_lifetime(app: web.Application) -> AsyncIterator[None]:
        try:
            await keeper.ensure_filled()
        except ServiceUnavailable:
            log.warning("Redis is unavailable at start; the board loads when it returns")
        yield
        await client.aclose()

    async def listening(app: web.Application) -> AsyncIterator[None]:
        # Serve only once this process hears the awards of all (its own included); an outage at
        # start is waited out in the background instead.
        try:
            await asyncio.wait_for(fanout.listening(), LISTEN_SECONDS)
        except TimeoutError:
            log.warning("the award channel is not subscribed yet; live updates start when Redis answers")
        yield

    tasks = running(
        Background("board-keeper", keeper.run),
        Background("board-sweep", sweeper.run),
        Background("award-channel", fanout.run),
        Background("ws-slots", slots.run),
        Background("ws-ip-slots", ip_slots.run),
    )
    return Parts(
        store=store,
        ranking=ranking,
        fanout=fanout,
        gate=RedisGate(client, keys, trips),
        tops=TopCache(max_age=REDIS_TOP_MAX_AGE),
        slots=slots,
        ip_slots=ip_slots,
        update_limiter=RedisRateLimiter(client, keys, "update", limits.updates_per_minute, trips),
        initialize_limiter=RedisRateLimiter(client, keys, "initialize", limits.initializes_per_minute, trips),
        ip_limiter=RedisRateLimiter(client, keys, "ip", limits.ip_requests_per_minute, trips),
        handshake_limiter=RedisRateLimiter(client, keys, "ws-handshake", limits.ws_handshakes_per_ip_per_minute, trips),
        # `/` is in no action name, so the kind's end is unambiguous before a user id's `:`.
        action_limiters={
            name: RedisRateLimiter(client, keys, f"action/{name}/", rate.count, trips, window_s=rate.window_s)
            for name, rate in _action_rates(config).items()
        },
        contexts=[redis_lifetime, tasks, listening],
        activity=SharedActivity(client, keys),
        redis=client,
        trips=trips,
        flights=RedisFlights(client, keys, trips),
    )


def build_parts(config: Config, catalog: Catalog, clock: Callable[[], int] = now_ms) -> Parts:
    """The parts for this configuration; the ranking is filled with the catalog's readable periods
    as of `clock`."""
    store = make_store(config, clock)
    mode = clustered if config.storage.redis_url else embedded
    return mode(config, store, catalog, clock)
