"""Writes under way as every process sees them: a sorted set per board period in Redis, each write
a member scored by its deadline (members past it are left for the key's expiry or their `land`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..errors import ServiceUnavailable
from ..records import BoardPeriod
from ..redis_client import Keys, TurnPipeline

KEEP_MS = 60_000  # a period's set goes this long after its last write under way was added

# KEYS: one set per period; ARGV[1]: the write's id, ARGV[2]: its deadline (ms), ARGV[3]: KEEP_MS.
_BOARD = """
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[2], ARGV[1])
  redis.call('PEXPIRE', key, ARGV[3])
end
return 0
"""
# KEYS: one set per period; ARGV[1]: the write's id.
_LAND = """
for _, key in ipairs(KEYS) do redis.call('ZREM', key, ARGV[1]) end
return 0
"""


class RedisFlights:
    """`SharedFlights` in Redis, through the award path's shared round trips."""

    def __init__(self, client: aioredis.Redis, keys: Keys, trips: TurnPipeline) -> None:
        self.keys = keys
        self.trips = trips
        self._board = client.register_script(_BOARD)
        self._land = client.register_script(_LAND)

    async def board(self, flight_id: str, wheres: list[BoardPeriod], deadline_ms: int) -> None:
        """A write is under way for these periods."""
        with _unavailable():
            await self.trips.script(self._board, self._keys(wheres), [flight_id, deadline_ms, KEEP_MS])

    async def land(self, flight_id: str, wheres: list[BoardPeriod]) -> None:
        """It has landed (placed, or failed)."""
        with _unavailable():
            await self.trips.script(self._land, self._keys(wheres), [flight_id])

    async def flying(self, where: BoardPeriod, now_ms: int) -> int:
        """How many writes of this period are under way, past deadlines left out."""
        key = self.keys.flights(where.board, where.period)
        with _unavailable():  # a read: it answers on a replica, or a Redis that refuses writes
            return int(await self.trips.call(lambda pipe: pipe.zcount(key, now_ms, "+inf")))

    def _keys(self, wheres: list[BoardPeriod]) -> list[str]:
        return [self.keys.flights(where.board, where.period) for where in wheres]


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    # Not only an outage: a write refused (a replica after a failover, MISCONF, out of memory) must
    # not fail a write that committed, nor hold a period's end.
    try:
        yield
    except (RedisError, OSError) as exc:
        raise ServiceUnavailable(f"Redis: {type(exc).__name__}") from None
