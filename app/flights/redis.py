"""Writes under way as every process sees them: a sorted set per board period in Redis, each write
a member scored by its deadline."""

from __future__ import annotations

import redis.asyncio as aioredis

from ..records import BoardPeriod
from ..redis_client import Keys, TurnPipeline, unavailable_on_outage

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
# KEYS[1]: a period's set; ARGV[1]: now (ms). Writes past their deadline are let go first.
_FLYING = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
return redis.call('ZCARD', KEYS[1])
"""


class RedisFlights:
    """`SharedFlights` in Redis, through the award path's shared round trips."""

    def __init__(self, client: aioredis.Redis, keys: Keys, trips: TurnPipeline) -> None:
        self.keys = keys
        self.trips = trips
        self._board = client.register_script(_BOARD)
        self._land = client.register_script(_LAND)
        self._flying = client.register_script(_FLYING)

    async def board(self, flight_id: str, wheres: list[BoardPeriod], deadline_ms: int) -> None:
        """A write is under way for these periods."""
        with unavailable_on_outage():
            await self.trips.script(self._board, self._keys(wheres), [flight_id, deadline_ms, KEEP_MS])

    async def land(self, flight_id: str, wheres: list[BoardPeriod]) -> None:
        """It has landed (placed, or failed)."""
        with unavailable_on_outage():
            await self.trips.script(self._land, self._keys(wheres), [flight_id])

    async def flying(self, where: BoardPeriod, now_ms: int) -> int:
        """How many writes of this period are under way, past deadlines left out."""
        with unavailable_on_outage():
            return int(await self.trips.script(self._flying, self._keys([where]), [now_ms]))

    def _keys(self, wheres: list[BoardPeriod]) -> list[str]:
        return [self.keys.flights(where.board, where.period) for where in wheres]
