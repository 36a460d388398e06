"""The shared ranking: a Redis sorted set every process reads and writes, the tie rule kept exact
by the member's encoding (`ties.member`)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from typing import cast

import redis.asyncio as aioredis

from ..errors import ServiceUnavailable
from ..records import Position, Standing
from ..redis_client import COMPARE_AND_DELETE, OUTAGES, Keys, TurnPipeline, unavailable_on_outage
from . import Fills
from .ties import member, seq_of, user_of

log = logging.getLogger(__name__)

LOAD_CALLS_IN_FLIGHT = 3
LOAD_CHUNK = 1000  # users per script call: Redis runs one call at a time, ~10 ms each

# KEYS: board, members, names, stamps; ARGV: user, score, member, name, stamp.
# Returns {previous rank or 0, rank}; an older standing than the one held changes nothing.
_PUT = """
local old = redis.call('HGET', KEYS[2], ARGV[1])
local previous = 0
if old then
  previous = redis.call('ZREVRANK', KEYS[1], old) + 1
  if string.sub(old, 1, 19) <= string.sub(ARGV[3], 1, 19) then
    return {previous, previous}
  end
  redis.call('ZREM', KEYS[1], old)
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[5])
return {previous, redis.call('ZREVRANK', KEYS[1], ARGV[3]) + 1}
"""

# KEYS: as _PUT; ARGV: (user, score, member, name, stamp) repeated. _PUT for a whole chunk of a
# rebuild in one call, with one command per key for the whole chunk (a call per user spent
# 40 s of a 1M-user rebuild packing commands in the client, then ~20 s in per-user commands).
_LOAD = """
local users = {}
for i = 1, #ARGV, 5 do users[#users + 1] = ARGV[i] end
local olds = redis.call('HMGET', KEYS[2], unpack(users))
local z, m, n, s = {}, {}, {}, {}
for j, user in ipairs(users) do
  local i, old = 5 * j - 4, olds[j]
  local member = ARGV[i + 2]
  if not old or string.sub(old, 1, 19) > string.sub(member, 1, 19) then
    if old then redis.call('ZREM', KEYS[1], old) end
    z[#z + 1] = ARGV[i + 1]; z[#z + 1] = member
    m[#m + 1] = user; m[#m + 1] = member
    n[#n + 1] = user; n[#n + 1] = ARGV[i + 3]
    s[#s + 1] = user; s[#s + 1] = ARGV[i + 4]
  end
end
if #z > 0 then
  redis.call('ZADD', KEYS[1], unpack(z))
  redis.call('HSET', KEYS[2], unpack(m))
  redis.call('HSET', KEYS[3], unpack(n))
  redis.call('HSET', KEYS[4], unpack(s))
end
return 0
"""

# KEYS: board, names, stamps; ARGV: limit. Returns {member, score, name, stamp, ...}.
_TOP = """
local rows = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local out = {}
for i = 1, #rows, 2 do
  local user = string.sub(rows[i], 21)
  out[#out + 1] = rows[i]
  out[#out + 1] = rows[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], user) or user
  out[#out + 1] = redis.call('HGET', KEYS[3], user) or '0'
end
return out
"""

# KEYS: board, members; ARGV: user ids. Returns {user, rank, score, ...} for those on the board.
_RANKS = """
local out = {}
for i = 1, #ARGV do
  local member = redis.call('HGET', KEYS[2], ARGV[i])
  if member then
    out[#out + 1] = ARGV[i]
    out[#out + 1] = redis.call('ZREVRANK', KEYS[1], member) + 1
    out[#out + 1] = redis.call('ZSCORE', KEYS[1], member)
  end
end
return out
"""

# KEYS: members, names; ARGV: user, name. Names are kept for users on the board only.
# Returns 1 if the name changed.
_RENAME = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 or redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisRanking(Fills):
    """The shared board. `stale` is set when an award committed but Redis missed it."""

    def __init__(self, client: aioredis.Redis, keys: Keys, trips: TurnPipeline | None = None) -> None:
        super().__init__()
        self.client = client
        self.keys = keys
        self.trips = trips or TurnPipeline(client)
        self.stale = False
        self.loads = 0  # loads this process made
        self._put = client.register_script(_PUT)
        self._load = client.register_script(_LOAD)
        self._top = client.register_script(_TOP)
        self._ranks = client.register_script(_RANKS)
        self._rename = client.register_script(_RENAME)
        self._delete_if = client.register_script(COMPARE_AND_DELETE)

    def _put_args(self, s: Standing) -> list[str | int]:
        return [s.user_id, s.score, member(s.seq, s.user_id), s.username, s.updated_ms]

    def _put_keys(self) -> list[str]:
        k = self.keys
        return [k.board, k.members, k.names, k.stamps]

    async def load(self, standings: list[Standing]) -> None:
        """Write every user (newer standings already there win), then mark the board ready."""
        starts = iter(range(0, len(standings), LOAD_CHUNK))

        async def loader() -> None:
            for start in starts:
                args: list[str | int] = []
                for s in standings[start : start + LOAD_CHUNK]:
                    args += self._put_args(s)
                if args:
                    await self._load(keys=self._put_keys(), args=args)

        with unavailable_on_outage():
            # Chunks hold distinct users, so their order does not matter: while Redis runs one
            # call the client packs the next (serially each waited for the other: 20 s for 1M).
            await asyncio.gather(*(loader() for _ in range(LOAD_CALLS_IN_FLIGHT)))
            await self.client.set(self.keys.ready, "1")
        self.stale = False
        self.loads += 1

    async def needs_load(self) -> bool:
        """True when Redis lost the board (restart, FLUSHDB), missed an award, or a load was asked for."""
        with unavailable_on_outage():
            ready, reload = await self.client.mget(self.keys.ready, self.keys.reload)
        return self.stale or ready is None or reload is not None

    async def ask_reload(self) -> None:
        """Ask for a load by whichever process checks next. A process that was killed between a
        commit and its board write left that award out of Redis; only the database has it."""
        with unavailable_on_outage():
            await self.client.set(self.keys.reload, secrets.token_hex(8))

    async def reload_asked(self) -> str | None:
        """The pending request for a load, if any: read before the database is."""
        with unavailable_on_outage():
            asked = await self.client.get(self.keys.reload)
        return None if asked is None else _text(asked)

    async def reload_done(self, asked: str) -> None:
        """Settle a request read before a load; one made since stays for the next load."""
        with unavailable_on_outage():
            await self._delete_if(keys=[self.keys.reload], args=[asked])

    async def lock_rebuild(self, seconds: int = 60) -> str | None:
        """Only one process rebuilds at a time: the lock's mark for this one, or None."""
        mark = secrets.token_hex(8)
        with unavailable_on_outage():
            return mark if await self.client.set(self.keys.rebuilding, mark, nx=True, ex=seconds) else None

    async def unlock_rebuild(self, mark: str) -> None:
        """Let the lock go, unless it expired and another process holds it now."""
        with unavailable_on_outage():
            await self._delete_if(keys=[self.keys.rebuilding], args=[mark])

    async def put(self, standing: Standing) -> tuple[int | None, int]:
        """Place a user atomically; (previous rank, new rank)."""
        try:
            previous, rank = await self.trips.script(self._put, self._put_keys(), self._put_args(standing))
        except OUTAGES:
            self.stale = True  # the database has the award; a rebuild will bring it here
            raise ServiceUnavailable("Redis is unavailable") from None
        return (int(previous) or None), int(rank)

    async def top(self, limit: int) -> list[tuple[int, Standing]]:
        """The first `limit` standings in one round trip."""
        if limit <= 0:  # ZREVRANGE 0 -1 would be the whole board
            return []
        k = self.keys
        with unavailable_on_outage():
            rows = await self.trips.script(self._top, [k.board, k.names, k.stamps], [limit])
        top = []
        for i, at in enumerate(range(0, len(rows), 4), start=1):
            raw, score, name, stamp = rows[at : at + 4]
            user_id = user_of(_text(raw))
            top.append(
                (
                    i,
                    Standing(
                        user_id=user_id,
                        username=_text(name),
                        score=int(float(score)),
                        seq=seq_of(raw),
                        updated_ms=int(stamp),
                    ),
                )
            )
        return top

    async def position(self, user_id: str) -> Position | None:
        """A user's standing, rank and the board's size."""
        k = self.keys
        with unavailable_on_outage():
            pipe = self.client.pipeline(transaction=False)
            pipe.hget(k.members, user_id)
            pipe.hget(k.names, user_id)
            pipe.hget(k.stamps, user_id)
            pipe.zcard(k.board)
            raw, name, stamp, size = await pipe.execute()
            if raw is None:
                return None
            pipe = self.client.pipeline(transaction=False)
            pipe.zrevrank(k.board, raw)
            pipe.zscore(k.board, raw)
            rank, score = await pipe.execute()
        if rank is None:  # moved between the two round trips; ask again
            return await self.position(user_id)
        standing = Standing(
            user_id=user_id,
            username=_text(name or user_id),
            score=int(score),
            seq=seq_of(raw),
            updated_ms=int(stamp or 0),
        )
        return Position(standing=standing, rank=int(rank) + 1, size=int(size))

    async def rename(self, user_id: str, username: str) -> bool:
        """Refresh the display name of a user on the board; True if it changed."""
        with unavailable_on_outage():
            return bool(await self._rename(keys=[self.keys.members, self.keys.names], args=[user_id, username]))

    async def ranked(self, first: int, last: int) -> list[tuple[int, str, int]]:
        """(rank, user, score) for ranks first..last."""
        if last < max(first, 1):  # a negative stop would count from the end of the board
            return []
        with unavailable_on_outage():
            rows = cast(
                list[tuple[bytes, float]],
                await self.client.zrevrange(self.keys.board, max(first, 1) - 1, last - 1, withscores=True),
            )
        return [(i, user_of(_text(raw)), int(score)) for i, (raw, score) in enumerate(rows, start=max(first, 1))]

    async def ranks(self, user_ids: list[str]) -> dict[str, tuple[int, int]]:
        """(rank, score) of these users, in chunks of one script call each."""
        found: dict[str, tuple[int, int]] = {}
        with unavailable_on_outage():
            for start in range(0, len(user_ids), 500):
                rows = await self._ranks(keys=[self.keys.board, self.keys.members], args=user_ids[start : start + 500])
                for at in range(0, len(rows), 3):
                    found[_text(rows[at])] = (int(rows[at + 1]), int(float(rows[at + 2])))
        return found

    async def size(self) -> int:
        """Users on the board."""
        with unavailable_on_outage():
            return int(await self.client.zcard(self.keys.board))

    async def counts_at_most(self, bounds: Sequence[int]) -> list[int]:
        """Users with a score at most each bound: one ZCOUNT each, in one round trip."""
        with unavailable_on_outage():
            pipe = self.client.pipeline(transaction=False)
            for bound in bounds:
                pipe.zcount(self.keys.board, "-inf", bound)
            return [int(count) for count in await pipe.execute()]
