"""Limits shared by every process: GCRA rate limits and WebSocket slots, each one atomic script."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable

import redis.asyncio as aioredis

from ..batching import TurnBatch
from ..errors import ServiceUnavailable
from ..redis_client import OUTAGES, Keys, TurnPipeline, unavailable_on_outage
from ..tasks import pause, stop_if_cancelled
from . import refuse

log = logging.getLogger(__name__)

# KEYS: each key's theoretical arrival time (ms); ARGV: interval ms, tolerance ms, then the
# number of hits on each key (with the hits a process reserves), in order. Returns per key the
# hits allowed, in order, and the ms the others must wait (as a string: Redis would truncate a
# fraction). Redis's clock serves every process.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i, key in ipairs(KEYS) do
  local hits = tonumber(ARGV[2 + i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local allowed = 0
  while allowed < hits and tat - now - tolerance <= 0 do
    tat = tat + interval
    allowed = allowed + 1
  end
  if allowed > 0 then redis.call('SET', key, tat, 'PX', math.ceil(tat - now) + 1) end
  out[#out + 1] = allowed
  out[#out + 1] = tostring(math.max(0, tat - now - tolerance))
end
return out
"""

# KEYS[1]: the owner's slots (sorted set: connection id -> expiry ms); ARGV: id, limit, ttl ms.
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

# A process may hold at most this share of a key's per-minute quota reserved (and at most
# RESERVE_MOST hits): what the limit can let through over its promise, per process.
RESERVE_SHARE = 100
RESERVE_MOST = 1000
BUSY_WITHIN = 1.0  # s: a key counted again this soon is busy here, and its next reservation grows
FORGET_AFTER = 60.0  # s: a key not counted here for this long is forgotten, with what it held

SLOT_TTL_MS = 90_000  # a process that dies without releasing frees its slots after this
SLOT_REFRESH_SECONDS = 30.0


class _Budget:
    """This process's share of one key's quota: hits Redis counted already, answered here."""

    __slots__ = ("asking", "counted", "held", "size")

    def __init__(self) -> None:
        self.held = 0  # reserved hits not answered yet
        self.size = 0  # the reservation asked for with the key's last trip
        self.counted = -math.inf  # when Redis last counted this key's hits for this process
        self.asking = False  # a reservation is on its way: no second one meanwhile


class RedisRateLimiter:
    """At most `count` hits in `window_s` seconds (a minute unless said) per key across all processes. The hits that arrive
    together (one loop turn) are counted in one script call: a round trip per request would
    cost more than the request. A key this process sees often also reserves a few hits with
    that call (up to `reserve_at_most`, by default 1 % of the quota and at most RESERVE_MOST),
    answered here without a round trip: Redis counts them when reserved, so the processes
    together never let through more than the limit plus what each holds reserved."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        kind: str,
        count: int,
        trips: TurnPipeline | None = None,
        *,
        window_s: float = 60.0,
        reserve_at_most: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = keys
        self.trips = trips or TurnPipeline(client)
        self.kind = kind
        self.interval_ms = window_s * 1000 / count
        self.tolerance_ms = self.interval_ms * (count - 1)
        if reserve_at_most is None:
            reserve_at_most = min(count // RESERVE_SHARE, RESERVE_MOST)
        self.reserve_at_most = reserve_at_most
        self._clock = clock
        self._script = client.register_script(_GCRA)
        self._hits: TurnBatch[str, float] = TurnBatch(self._count, cancelled=ServiceUnavailable)
        self._budgets: OrderedDict[str, _Budget] = OrderedDict()  # the key Redis counted longest ago first
        self.refused = 0

    async def check(self, key: str) -> None:
        """Count one hit; RateLimited with Retry-After when over."""
        budget = self._budgets.get(key)
        if budget is not None and budget.held:
            budget.held -= 1  # counted in Redis when it was reserved
            return
        wait_ms = await self._hits.submit(key)
        if wait_ms > 0:
            self.refused += 1
            raise refuse(wait_ms / 1000)

    def reserved(self, key: str) -> int:
        """Hits of `key` this process holds: counted in Redis, not answered yet."""
        budget = self._budgets.get(key)
        return 0 if budget is None else budget.held

    async def _count(self, hits: list[str]) -> list[float]:
        """Each hit's wait (0: allowed), the hits of one key in the order they came. Hits whose
        request went away still count: they reached the server."""
        counts = Counter(hits)
        names = list(counts)
        now = self._clock()
        budgets = [self._budget(name, now) for name in names]
        asked = [0 if budget is None else self._reservation(budget) for budget in budgets]
        wanted = [counts[name] + n for name, n in zip(names, asked, strict=True)]
        try:
            with unavailable_on_outage():
                reply = await self.trips.script(
                    self._script,
                    [self.keys.rate(self.kind, name) for name in names],
                    [self.interval_ms, self.tolerance_ms, *wanted],
                )
        finally:
            for budget, n in zip(budgets, asked, strict=True):
                if budget is not None and n:
                    budget.asking = False
        verdicts = {}
        for i, (name, budget) in enumerate(zip(names, budgets, strict=True)):
            allowed, wait_ms = int(reply[2 * i]), float(reply[2 * i + 1])
            # Redis allows the hits first, in order, then reserves from what is left.
            verdicts[name] = (min(allowed, counts[name]), wait_ms)
            if budget is not None and allowed > counts[name]:
                budget.held += allowed - counts[name]
        seen: Counter[str] = Counter()
        waits = []
        for name in hits:
            allowed, wait_ms = verdicts[name]
            waits.append(0.0 if seen[name] < allowed else wait_ms)
            seen[name] += 1
        return waits

    def _budget(self, name: str, now: float) -> _Budget | None:
        """The key's budget, its next reservation sized (None when this limiter reserves none):
        nothing for a key seen once, since most clients come and go; doubled while it keeps
        coming back soon, halved when it does not."""
        if not self.reserve_at_most:
            return None
        budgets = self._budgets
        budget = budgets.get(name)
        if budget is None:
            budgets[name] = budget = _Budget()
        else:
            budgets.move_to_end(name)
            if not budget.asking:
                busy = now - budget.counted < BUSY_WITHIN
                budget.size = min(max(1, 2 * budget.size), self.reserve_at_most) if busy else budget.size // 2
        budget.counted = now
        self._forget(now)
        return budget

    def _reservation(self, budget: _Budget) -> int:
        """The hits to reserve with this trip: none while one is on its way, and never more held
        than `reserve_at_most`."""
        if budget.asking:
            return 0
        extra = max(0, min(budget.size, self.reserve_at_most - budget.held))
        budget.asking = extra > 0
        return extra

    def _forget(self, now: float) -> None:
        """Drop the keys not counted here for a while, oldest first (a few at a time, never a
        sweep of them all): Redis refilled what they hold long ago, so dropping it takes away
        only what the limit could let through over its promise."""
        budgets = self._budgets
        while budgets:
            name, budget = next(iter(budgets.items()))
            if now - budget.counted < FORGET_AFTER:
                return
            del budgets[name]


class RedisSlots:
    """WebSocket connections per owner of one kind (`user`, `ip`) across all processes. Slots
    expire unless refreshed, so a crashed process cannot hold them for ever; `run` refreshes
    this process's slots."""

    def __init__(self, client: aioredis.Redis, keys: Keys, kind: str, limit: int) -> None:
        self.client = client
        self.keys = keys
        self.kind = kind
        self.limit = limit
        self.held: dict[str, set[str]] = {}
        self._acquire = client.register_script(_ACQUIRE)

    async def acquire(self, owner: str, connection_id: str) -> bool:
        """Take a slot if the owner has one free anywhere."""
        key = self.keys.slots(self.kind, owner)
        with unavailable_on_outage():
            ok = await self._acquire(keys=[key], args=[connection_id, self.limit, SLOT_TTL_MS])
        if ok:
            self.held.setdefault(owner, set()).add(connection_id)
        return bool(ok)

    async def release(self, owner: str, connection_id: str) -> None:
        """Give a slot back."""
        held = self.held.get(owner)
        if held is not None:
            held.discard(connection_id)
            if not held:
                del self.held[owner]
        with unavailable_on_outage():
            await self.client.zrem(self.keys.slots(self.kind, owner), connection_id)

    async def refresh(self) -> None:
        """Extend every slot this process holds (and restore them after a Redis flush)."""
        pipe = self.client.pipeline(transaction=False)
        expiry_ms = (await self.client.time())[0] * 1000 + SLOT_TTL_MS
        for owner, ids in self.held.items():
            key = self.keys.slots(self.kind, owner)
            pipe.zadd(key, dict.fromkeys(ids, expiry_ms))
            pipe.pexpire(key, SLOT_TTL_MS)
        await pipe.execute()

    async def run(self) -> None:
        """Refresh periodically for as long as the app runs."""
        while True:
            await pause(SLOT_REFRESH_SECONDS)
            try:
                await self.refresh()
            except OUTAGES:
                stop_if_cancelled()
                log.warning("could not refresh WebSocket %s slots; Redis is unavailable", self.kind)
