"""Which parts serve a configuration: embedded (one process) or Redis (+ PostgreSQL) for many."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import msgspec
from aiohttp import web

from .board import Board, MemoryBoard
from .cluster.board import RedisBoard
from .cluster.client import Keys, TurnPipeline, connect
from .cluster.fanout import RedisFanout
from .cluster.gate import RedisGate
from .cluster.keeper import ensure_loaded, keep_loaded
from .cluster.limits import RedisRateLimiter, RedisSlots
from .config import Config
from .errors import ServiceUnavailable
from .fanout import Fanout, LocalFanout
from .gate import NonceGate, OpenGate
from .ratelimit import Limiter, RateLimiter
from .slots import ConnectionSlots, LocalSlots
from .storage import Store
from .storage.postgres import PostgresStore
from .storage.sqlite import SqliteStore

log = logging.getLogger(__name__)

CleanupContext = Callable[[web.Application], AsyncIterator[None]]
Rebuild = Callable[[], Awaitable[None]]
STOP_SECONDS = 5.0


class Parts(msgspec.Struct, kw_only=True):
    """The pieces a deployment mode provides, and the lifetimes that run them."""

    store: Store
    board: Board
    fanout: Fanout
    gate: NonceGate
    slots: ConnectionSlots  # WebSocket connections per user
    ip_slots: ConnectionSlots  # WebSocket connections per client address
    update_limiter: Limiter
    initialize_limiter: Limiter
    ip_limiter: Limiter
    handshake_limiter: Limiter  # WebSocket handshakes per client address
    # Given the rebuild function once the service exists: what to run while the app runs.
    contexts: Callable[[Rebuild], list[CleanupContext]]


def make_store(config: Config) -> Store:
    """The system of record: PostgreSQL when a database URL is set, else the SQLite file."""
    if config.storage.database_url:
        return PostgresStore(config.storage.database_url, pool_size=config.storage.database_pool_size)
    return SqliteStore(config.storage.sqlite_path, synchronous=config.storage.synchronous)


def _background(name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> CleanupContext:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run(), name=name)
        yield
        task.cancel()
        # Bounded: a loop that lost its cancellation must not hold the shutdown for ever.
        done, _ = await asyncio.wait({task}, timeout=STOP_SECONDS)
        if not done:
            log.error("background task %s did not stop", name)

    return ctx


def embedded(config: Config) -> Parts:
    """One process: ranks, limits and fan-out in memory; the board rebuilt at start."""

    def contexts(rebuild: Rebuild) -> list[CleanupContext]:
        async def load(app: web.Application) -> AsyncIterator[None]:
            await rebuild()
            yield

        return [load]

    return Parts(
        store=make_store(config),
        board=MemoryBoard(),
        fanout=LocalFanout(),
        gate=OpenGate(),
        slots=LocalSlots(config.limits.ws_connections_per_user),
        ip_slots=LocalSlots(config.limits.ws_connections_per_ip),
        update_limiter=RateLimiter(config.limits.updates_per_minute),
        initialize_limiter=RateLimiter(config.limits.initializes_per_minute),
        ip_limiter=RateLimiter(config.limits.ip_requests_per_minute),
        handshake_limiter=RateLimiter(config.limits.ws_handshakes_per_ip_per_minute),
        contexts=contexts,
    )


def clustered(config: Config) -> Parts:
    """Many processes: Redis holds the board, nonces, limits and fan-out; the database the truth."""
    client = connect(config.storage.redis_url, pool_size=config.storage.redis_pool_size)
    keys = Keys(config.storage.redis_prefix)
    trips = TurnPipeline(client)  # the award path's commands of one loop turn share a round trip
    board = RedisBoard(client, keys, trips)
    fanout = RedisFanout(client, keys, trips)
    # Every award, from any process, arrives on the channel: the board's copy of its top is
    # stale from then on; after a gap nothing is known.
    fanout.subscribe(lambda event: board.changed())
    fanout.on_gap(board.changed)
    slots = RedisSlots(client, keys, "user", config.limits.ws_connections_per_user)
    ip_slots = RedisSlots(client, keys, "ip", config.limits.ws_connections_per_ip)

    def contexts(rebuild: Rebuild) -> list[CleanupContext]:
        async def reload() -> None:
            await rebuild()
            await fanout.reloaded()  # the other processes' viewers get the loaded board too

        async def redis_lifetime(app: web.Application) -> AsyncIterator[None]:
            try:
                await ensure_loaded(board, reload)
            except ServiceUnavailable:
                log.warning("Redis is unavailable at start; the board loads when it returns")
            yield
            await client.aclose()

        return [
            redis_lifetime,
            _background("board-keeper", lambda: keep_loaded(board, reload)),
            _background("award-channel", fanout.run),
            _background("ws-slots", slots.run),
            _background("ws-ip-slots", ip_slots.run),
        ]

    return Parts(
        store=make_store(config),
        board=board,
        fanout=fanout,
        gate=RedisGate(client, keys, trips),
        slots=slots,
        ip_slots=ip_slots,
        update_limiter=RedisRateLimiter(client, keys, "update", config.limits.updates_per_minute, trips),
        initialize_limiter=RedisRateLimiter(client, keys, "initialize", config.limits.initializes_per_minute, trips),
        ip_limiter=RedisRateLimiter(client, keys, "ip", config.limits.ip_requests_per_minute, trips),
        handshake_limiter=RedisRateLimiter(
            client, keys, "ws-handshake", config.limits.ws_handshakes_per_ip_per_minute, trips
        ),
        contexts=contexts,
    )


def build_parts(config: Config) -> Parts:
    """The parts for this configuration."""
    return clustered(config) if config.storage.redis_url else embedded(config)
