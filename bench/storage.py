"""A Redis key prefix and a PostgreSQL schema of one's own: created for one bench run (or one
test, through tests/isolation.py), removed after it."""

from __future__ import annotations

import os
import secrets
from urllib.parse import quote, urlsplit

import asyncpg
import redis.asyncio as aioredis


def _loopback_redis(url: str) -> str:
    """`url` if it names a Redis on this machine's loopback address; the bench loads nothing else."""
    host = urlsplit(url).hostname or ""
    if url.startswith("redis://") and (host == "localhost" or host.startswith("127.") or host == "::1"):
        return url
    raise SystemExit(f"BENCH_REDIS_URL must be a redis:// URL on the loopback address, not {url!r}")


# BENCH_REDIS_URL: another Redis on the loopback (one started with other settings, say).
REDIS_URL = _loopback_redis(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/1"))
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def unique_name(kind: str) -> str:
    """A fresh name for a bench prefix or schema, e.g. `bench_sb_1a2b3c4d`."""
    return f"bench_{kind}_{secrets.token_hex(4)}"


async def redis_reachable(url: str = REDIS_URL) -> bool:
    """Whether Redis answers PING at `url` within a second."""
    client = aioredis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        await client.ping()
        return True
    except (aioredis.RedisError, OSError):
        return False
    finally:
        await client.aclose()


async def drop_redis_prefix(prefix: str, url: str = REDIS_URL) -> int:
    """Delete the keys under `prefix:` only (SCAN + UNLINK, never FLUSHDB); how many went. UNLINK:
    a bench's 1M-entry keys took DEL 0.35-0.4 s, which every other user of the shared Redis waited."""
    client = aioredis.Redis.from_url(url)
    removed = 0
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                removed += await client.unlink(*batch)
                batch.clear()
        if batch:
            removed += await client.unlink(*batch)
    finally:
        await client.aclose()
    return removed


def schema_url(schema: str, url: str = POSTGRES_URL) -> str:
    """The database URL whose connections have `schema` as their search_path."""
    return f"{url}?options={quote(f'-c search_path={schema}')}"


async def create_schema(schema: str, url: str = POSTGRES_URL) -> str:
    """Create `schema` and return a database URL whose search_path is that schema."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    return schema_url(schema, url)


async def drop_schema(schema: str, url: str = POSTGRES_URL) -> None:
    """Drop `schema` and everything in it, if it exists."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
