"""Limits shared by every process: GCRA rate limits and WebSocket slots, each one atomic script."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis

from ..ratelimit import refuse
from .client import OUTAGES, Keys, stop_if_cancelled, unavailable_on_outage

log = logging.getLogger(__name__)

# KEYS[1]: the key's theoretical arrival time (ms); ARGV: interval ms, tolerance ms.
# Returns the ms to wait, 0 when allowed. Redis's clock serves every process.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - now - tonumber(ARGV[2])
if wait > 0 then return wait end
local new = tat + tonumber(ARGV[1])
redis.call('SET', KEYS[1], new, 'PX', math.ceil(new - now) + 1)
return 0
"""

# KEYS[1]: the user's slots (sorted set: connection id -> expiry ms); ARGV: id, limit, ttl ms.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

SLOT_TTL_MS = 90_000  # a process that dies without releasing frees its slots after this
SLOT_REFRESH_SECONDS = 30.0


class RedisRateLimiter:
    """At most `per_minute` hits a minute per key across all processes."""

    def __init__(self, client: aioredis.Redis, keys: Keys, kind: str, per_minute: int) -> None:
        self.keys = keys
        self.kind = kind
        self.interval_ms = 60_000 / per_minute
        self.tolerance_ms = self.interval_ms * (per_minute - 1)
        self._script = client.register_script(_GCRA)

    async def check(self, key: str) -> None:
        """Count one hit; RateLimited with Retry-After when over."""
        with unavailable_on_outage():
            wait_ms = await self._script(
                keys=[self.keys.rate(self.kind, key)], args=[self.interval_ms, self.tolerance_ms]
            )
        if float(wait_ms) > 0:
            raise refuse(float(wait_ms) / 1000)


class RedisSlots:
    """WebSocket connections per user across all processes. Slots expire unless refreshed, so a
    crashed process cannot hold them for ever; `run` refreshes this process's slots."""

    def __init__(self, client: aioredis.Redis, keys: Keys, per_user: int) -> None:
        self.client = client
        self.keys = keys
        self.per_user = per_user
        self.held: dict[str, set[str]] = {}
        self._acquire = client.register_script(_ACQUIRE)

    async def acquire(self, user_id: str, connection_id: str) -> bool:
        """Take a slot if the user has one free anywhere."""
        with unavailable_on_outage():
            ok = await self._acquire(keys=[self.keys.slots(user_id)], args=[connection_id, self.per_user, SLOT_TTL_MS])
        if ok:
            self.held.setdefault(user_id, set()).add(connection_id)
        return bool(ok)

    async def release(self, user_id: str, connection_id: str) -> None:
        """Give a slot back."""
        held = self.held.get(user_id)
        if held is not None:
            held.discard(connection_id)
            if not held:
                del self.held[user_id]
        with unavailable_on_outage():
            await self.client.zrem(self.keys.slots(user_id), connection_id)

    async def refresh(self) -> None:
        """Extend every slot this process holds (and restore them after a Redis flush)."""
        pipe = self.client.pipeline(transaction=False)
        expiry_ms = (await self.client.time())[0] * 1000 + SLOT_TTL_MS
        for user_id, ids in self.held.items():
            key = self.keys.slots(user_id)
            pipe.zadd(key, dict.fromkeys(ids, expiry_ms))
            pipe.pexpire(key, SLOT_TTL_MS)
        await pipe.execute()

    async def run(self) -> None:
        """Refresh periodically for as long as the app runs."""
        while True:
            await asyncio.sleep(SLOT_REFRESH_SECONDS)
            try:
                await self.refresh()
            except OUTAGES:
                stop_if_cancelled()
                log.warning("could not refresh WebSocket slots; Redis is unavailable")
