"""The shared ranking: per board period, a Redis sorted set every process reads and writes, the
order kept exact by the member's encoding (`ties.member`), and a hash of the rest of each standing.

A period's keys (`Keys.shelf`): `rank`, the sorted set, score -> "<head>:<user id>" (`ties`);
`cards`, a hash, user id -> "<head><flags><updated ms>:<metadata>", where flags are two characters,
"s" or "-" (a subscore or none) and "m" or "-" (metadata or none). The head is repeated in the card
so that one HGET finds the member to move; `removed`, a hash, user id -> the seq (`ties.seq_part`)
of their entry an operator removed lately. Display names are in one hash for every board. The
scripts are in scripts.py."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import redis.asyncio as aioredis

from ..clock import now_ms
from ..errors import ServiceUnavailable
from ..records import BoardPeriod, Position, Standing
from ..redis_client import (
    COMPARE_AND_DELETE,
    COMPARE_AND_EXPIRE,
    OUTAGES,
    Keys,
    ShelfKeys,
    TurnPipeline,
    unavailable_on_outage,
)
from . import REMOVAL_MARK_SECONDS, Fills, Placement, StandingsSource
from .scripts import AROUND, LOAD, POSITIONS, PUT, RANKS, REMOVE, RENAME, SLICE, TAKE_OFF
from .ties import BOUND, ORDER_DIGITS, head, score_of, seq_of, seq_part, subscore_of, user_of, zscore

log = logging.getLogger(__name__)

# A period's keys are UNLINKed by the service soon after the period stops being readable
# (ranking/sweep.py): Redis frees them in a background thread. Their PEXPIRE, this long after that
# end, is only the backstop for keys no process let go (every process down across a rollover): an
# expiry is freed in Redis's main thread unless Redis runs with `lazyfree-lazy-expire yes`, and a
# 1M-entry period held every command ~1 s (BENCHMARKS.md, "Boards"). An hour is far past the sweep
# (UNLINK_AFTER_MS plus one SWEEP_SECONDS), so the UNLINK wins whenever a process runs.
EXPIRY_MARGIN_MS = 3_600_000
LOAD_CALLS_IN_FLIGHT = 3
LOAD_CHUNK = 1000  # users per script call: Redis runs one call at a time, ~10 ms each
READ_CHUNK = 100  # users per positions/ranks call: a call blocks Redis for every other client
UNLINK_CHUNK = 1000  # keys per UNLINK: each key costs Redis only a lookup and a hand-off

_FLAGS = 2  # the card's flags, after its head


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _card(s: Standing, ascending: bool) -> str:
    flags = ("-" if s.subscore is None else "s") + ("-" if s.metadata is None else "m")
    return f"{head(s, ascending)}{flags}{s.updated_ms}:{s.metadata or ''}"


def _standing(raw: bytes, score: bytes | float, card: bytes, name: bytes, ascending: bool) -> Standing:
    """A standing from its member, sorted-set score, card and name as Redis holds them."""
    member = _text(raw)
    rest = _text(card)[ORDER_DIGITS:]  # "" if the card went missing: the member still orders it
    flags, (stamp, _, metadata) = rest[:_FLAGS], rest[_FLAGS:].partition(":")
    return Standing(
        user_id=user_of(member),
        username=_text(name),
        score=score_of(score, ascending),
        seq=seq_of(member),
        updated_ms=int(stamp or 0),
        subscore=subscore_of(member, ascending) if flags[:1] == "s" else None,
        metadata=metadata if flags[1:] == "m" else None,
    )


class RedisRanking(Fills):
    """The shared boards. `stale` is set when a write committed but Redis missed it."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        trips: TurnPipeline | None = None,
        clock: Callable[[], int] = now_ms,
        expiry_margin_ms: int = EXPIRY_MARGIN_MS,
    ) -> None:
        super().__init__()
        # Expiry is sent as a time to live from this clock (the one periods are computed with),
        # not as an instant on Redis's clock: the two clocks need not agree.
        self.clock = clock
        self.expiry_margin_ms = expiry_margin_ms
        self.client = client
        self.keys = keys
        self.trips = trips or TurnPipeline(client)
        self.stale = False
        self.misses = 0  # writes Redis missed, so that a fill only clears those it read after
        self.loads = 0  # fills this process made
        self._put = client.register_script(PUT)
        self._load = client.register_script(LOAD)
        self._slice = client.register_script(SLICE)
        self._positions = client.register_script(POSITIONS)
        self._around = client.register_script(AROUND)
        self._ranks = client.register_script(RANKS)
        self._rename = client.register_script(RENAME)
        self._remove = client.register_script(REMOVE)
        self._mark_removed = client.register_script(TAKE_OFF)
        self._delete_if = client.register_script(COMPARE_AND_DELETE)
        self._expire_if = client.register_script(COMPARE_AND_EXPIRE)

    def _shelf(self, where: BoardPeriod) -> ShelfKeys:
        return self.keys.shelf(where.board, where.period)

    def _keys(self, where: BoardPeriod) -> list[str]:
        shelf = self._shelf(where)
        return [shelf.rank, shelf.cards, self.keys.names]

    def _writes(self, where: BoardPeriod) -> list[str]:
        """The keys of a script that places users: a board period's, the excluded users, the
        period's removed entries."""
        return [*self._keys(where), self.keys.excluded, self._shelf(where).removed]

    def _args(self, where: BoardPeriod, s: Standing) -> list[str | int]:
        return [s.user_id, zscore(s.score, where.ascending), _card(s, where.ascending), s.username]

    async def fill(self, source: StandingsSource, shelves: Mapping[BoardPeriod, int | None]) -> int:
        """Load these board periods from the system of record, then mark the boards ready."""
        misses = self.misses
        count = await super().fill(source, shelves)
        with unavailable_on_outage():
            await self.client.set(self.keys.ready, "1")
        # A write missed while the fill ran may have committed after the database was read.
        self.stale = self.misses != misses
        self.loads += 1
        return count

    def _ttl(self, expire_ms: int | None) -> int | str:
        """PEXPIRE's argument for a period readable until `expire_ms`: the backstop, the margin
        after that end ("" when it never expires)."""
        return "" if expire_ms is None else max(1, expire_ms + self.expiry_margin_ms - self.clock())

    async def load(self, where: BoardPeriod, standings: list[Standing], expire_ms: int | None) -> None:
        """Write every user of a board period (newer standings already there win)."""
        # At least one call, even with no standings: it sets the expiry of what is held.
        starts = iter(range(0, max(len(standings), 1), LOAD_CHUNK))
        keys = self._writes(where)

        async def loader() -> None:
            for start in starts:
                args: list[str | int] = [self._ttl(expire_ms)]
                for s in standings[start : start + LOAD_CHUNK]:
                    args += self._args(where, s)
                await self._load(keys=keys, args=args)

        with unavailable_on_outage():
            # Chunks hold distinct users, so their order does not matter: while Redis runs one
            # call the client packs the next (serially each waited for the other: 20 s for 1M).
            await asyncio.gather(*(loader() for _ in range(LOAD_CALLS_IN_FLIGHT)))

    async def needs_load(self) -> bool:
        """True when Redis lost the boards (restart, FLUSHDB), missed a write, or a load was asked for."""
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

    async def lock_rebuild(self, seconds: int) -> str | None:
        """Only one process rebuilds at a time: the lock's mark for this one, or None. It lapses
        after `seconds` unless its holder renews it (`renew_rebuild`)."""
        mark = secrets.token_hex(8)
        with unavailable_on_outage():
            return mark if await self.client.set(self.keys.rebuilding, mark, nx=True, ex=seconds) else None

    async def renew_rebuild(self, mark: str, seconds: int) -> bool:
        """Keep the lock `seconds` more, if it is still this holder's; whether it was."""
        with unavailable_on_outage():
            return bool(await self._expire_if(keys=[self.keys.rebuilding], args=[mark, seconds]))

    async def unlock_rebuild(self, mark: str) -> None:
        """Let the lock go, unless it expired and another process holds it now."""
        with unavailable_on_outage():
            await self._delete_if(keys=[self.keys.rebuilding], args=[mark])

    async def put(
        self, where: BoardPeriod, standing: Standing, *, expire_ms: int | None = None
    ) -> tuple[int | None, int]:
        """Place a user atomically, in this loop turn's round trip; (previous rank, new rank)."""
        return (await self.put_all([(where, standing, expire_ms)]))[0]

    async def put_all(self, placements: Sequence[Placement]) -> list[tuple[int | None, int]]:
        """Place one user on several board periods in one script call, in this loop turn's round
        trip (a call per board cost each extra board of an award a command to pack and parse)."""
        if not placements:
            return []
        first = placements[0][1]
        keys = [self.keys.names, self.keys.excluded]
        args: list[str | int] = [first.user_id, first.username]
        for where, standing, expire_ms in placements:
            assert standing.user_id == first.user_id  # one user's
            keys += self._shelf(where)
            args += [zscore(standing.score, where.ascending), _card(standing, where.ascending), self._ttl(expire_ms)]
        try:
            reply = cast(list[Any], await self.trips.script(self._put, keys, args))
        except OUTAGES:
            self.stale = True  # the database has the write; a rebuild will bring it here
            self.misses += 1
            raise ServiceUnavailable("Redis is unavailable") from None
        return [((int(reply[i]) or None), int(reply[i + 1])) for i in range(0, len(reply), 2)]

    async def top(self, where: BoardPeriod, limit: int) -> list[tuple[int, Standing]]:
        """The first `limit` standings in one round trip."""
        return await self.slice(where, 1, limit)

    async def slice(self, where: BoardPeriod, first: int, last: int) -> list[tuple[int, Standing]]:
        """Standings ranked first..last in one round trip (none for an empty range)."""
        if last < max(first, 1):
            return []
        return (await self.page(where, first, last))[0]

    async def page(self, where: BoardPeriod, first: int, last: int) -> tuple[list[tuple[int, Standing]], int]:
        """Standings ranked first..last and the board's size, one script call."""
        first = max(first, 1)
        # A negative stop would count from the end of the board: an empty range asks for none.
        rows = [first - 1, last - 1] if last >= first else [1, 0]
        with unavailable_on_outage():
            reply = cast(list[Any], await self.trips.script(self._slice, self._keys(where), rows))
        shown = []
        for rank, at in enumerate(range(1, len(reply), 4), start=first):
            raw, score, card, name = reply[at : at + 4]
            shown.append((rank, _standing(raw, score, card, name, where.ascending)))
        return shown, int(reply[0])

    async def position(self, where: BoardPeriod, user_id: str) -> Position | None:
        """A user's standing, rank and the board's size in one round trip."""
        found = await self.positions(where, [user_id])
        return found[0] if found else None

    async def positions(self, where: BoardPeriod, user_ids: Sequence[str]) -> list[Position]:
        """Those of these users on the board, by rank: one script call per READ_CHUNK users, all
        in one round trip."""
        unique = list(dict.fromkeys(user_ids))
        keys = self._keys(where)
        with unavailable_on_outage():
            replies = await asyncio.gather(
                *(
                    self.trips.script(self._positions, keys, unique[start : start + READ_CHUNK])
                    for start in range(0, len(unique), READ_CHUNK)
                )
            )
        found = []
        for reply in cast(list[list[Any]], replies):
            size = int(reply[0])
            for at in range(1, len(reply), 5):
                raw, rank, score, card, name = reply[at : at + 5]
                standing = _standing(raw, score, card, name, where.ascending)
                found.append(Position(standing=standing, rank=int(rank), size=size))
        return sorted(found, key=lambda p: p.rank)

    async def around(
        self, where: BoardPeriod, user_id: str, radius: int
    ) -> tuple[Position | None, list[tuple[int, Standing]], int]:
        """A user's place, the standings `radius` ranks either side and the board's size, in one
        round trip."""
        with unavailable_on_outage():
            reply = cast(list[Any], await self.trips.script(self._around, self._keys(where), [user_id, radius]))
        size, rank = int(reply[0]), int(reply[1])
        if not rank:
            return None, [], size
        shown = []
        for place, at in enumerate(range(2, len(reply), 4), start=max(rank - radius, 1)):
            raw, score, card, name = reply[at : at + 4]
            shown.append((place, _standing(raw, score, card, name, where.ascending)))
        mine = next(s for place, s in shown if place == rank)
        return Position(standing=mine, rank=rank, size=size), shown, size

    async def rename(self, user_id: str, username: str) -> bool:
        """Refresh the display name of a user on every board in one command; True if it changed."""
        with unavailable_on_outage():
            return bool(await self._rename(keys=[self.keys.names], args=[user_id, username]))

    async def ranked(self, where: BoardPeriod, first: int, last: int) -> list[tuple[int, str, int]]:
        """(rank, user, score) for ranks first..last."""
        first = max(first, 1)
        if last < first:  # a negative stop would count from the end of the board
            return []
        key = self._shelf(where).rank
        with unavailable_on_outage():  # in the loop turn's round trip (the overtakes of every write)
            rows = cast(
                list[tuple[bytes, float]],
                await self.trips.call(lambda pipe: pipe.zrevrange(key, first - 1, last - 1, withscores=True)),
            )
        return [
            (i, user_of(_text(raw)), score_of(score, where.ascending))
            for i, (raw, score) in enumerate(rows, start=first)
        ]

    async def ranks(self, where: BoardPeriod, user_ids: list[str]) -> dict[str, tuple[int, int]]:
        """(rank, score) of these users: one script call per READ_CHUNK users, in one round trip."""
        shelf = self._shelf(where)
        with unavailable_on_outage():
            replies = await asyncio.gather(
                *(
                    self.trips.script(self._ranks, [shelf.rank, shelf.cards], user_ids[start : start + READ_CHUNK])
                    for start in range(0, len(user_ids), READ_CHUNK)
                )
            )
        found: dict[str, tuple[int, int]] = {}
        for rows in cast(list[list[Any]], replies):
            for at in range(0, len(rows), 3):
                found[_text(rows[at])] = (int(rows[at + 1]), score_of(rows[at + 2], where.ascending))
        return found

    async def size(self, where: BoardPeriod) -> int:
        """Users on the board."""
        key = self._shelf(where).rank
        with unavailable_on_outage():  # in the shared trip: a board's periods are counted together
            return int(await self.trips.call(lambda pipe: pipe.zcard(key)))

    async def counts_at_most(self, where: BoardPeriod, bounds: Sequence[int]) -> list[int]:
        """Users with a score at most each bound: one ZCOUNT each, in one round trip."""
        rank = self._shelf(where).rank
        # Scores are within ±BOUND; a bound beyond it would be rounded to a double (2**53 + 1
        # reads as 2**53), so it is clamped, and one below every score counts nobody.
        asked = [min(bound, BOUND) for bound in bounds if bound >= -BOUND]
        with unavailable_on_outage():
            pipe = self.client.pipeline(transaction=False)
            for bound in asked:
                if where.ascending:  # stored negated: a score at most `bound` is stored at least -bound
                    pipe.zcount(rank, -bound, "+inf")
                else:
                    pipe.zcount(rank, "-inf", bound)
            counts = [int(count) for count in await pipe.execute()] if asked else []
        return [0] * (len(bounds) - len(asked)) + counts

    async def remove(self, user_id: str, shelves: Sequence[BoardPeriod], *, forget: bool = True) -> None:
        """Take a user off these board periods and, when `forget`, forget them (name, exclusion),
        in one script."""
        await self._off(user_id, shelves, "forget" if forget else "")

    async def take_off(self, where: BoardPeriod, entries: Sequence[tuple[str, int]]) -> None:
        """Take these removed entries off a board period and mark them, LOAD_CHUNK per script call."""
        keys = list(self._shelf(where))
        marks_ms = REMOVAL_MARK_SECONDS * 1000
        with unavailable_on_outage():
            for start in range(0, len(entries), LOAD_CHUNK):
                args: list[str | int] = [marks_ms]
                for user_id, seq in entries[start : start + LOAD_CHUNK]:
                    args += [user_id, seq_part(seq)]
                await self._mark_removed(keys=keys, args=args)

    async def exclude(self, user_id: str, shelves: Sequence[BoardPeriod]) -> None:
        """Take a user off these board periods and exclude them, in one script."""
        await self._off(user_id, shelves, "exclude")

    async def _off(self, user_id: str, shelves: Sequence[BoardPeriod], then: str) -> None:
        keys = [key for where in shelves for key in self._shelf(where)]
        with unavailable_on_outage():
            await self._remove(keys=[*keys, self.keys.names, self.keys.excluded], args=[user_id, then])

    async def include(self, user_id: str) -> None:
        """Let a user be placed again."""
        with unavailable_on_outage():
            await self.client.srem(self.keys.excluded, user_id)

    async def exclude_all(self, user_ids: Sequence[str]) -> None:
        """Exclude these users (a fill's: the database's disqualified users); none taken off."""
        if user_ids:
            with unavailable_on_outage():
                await self.client.sadd(self.keys.excluded, *user_ids)

    async def drop(self, where: BoardPeriod) -> None:
        """Forget a board period: unlink its keys (names stay, shared by every board)."""
        await self.unlink([where])

    async def unlink(self, shelves: Sequence[BoardPeriod]) -> int:
        """Forget these board periods; how many of their keys there were. UNLINK, not DEL: Redis
        frees a big period in a background thread instead of holding every command meanwhile."""
        keys = [key for where in shelves for key in self._shelf(where)]
        unlinked = 0
        with unavailable_on_outage():
            for start in range(0, len(keys), UNLINK_CHUNK):
                unlinked += int(await self.client.unlink(*keys[start : start + UNLINK_CHUNK]))
        return unlinked
