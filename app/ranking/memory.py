"""The embedded ranking: an order-statistic list per board period in this process, filled from the
database at start."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Container, Sequence

import msgspec
from sortedcontainers import SortedList

from ..records import BoardPeriod, Position, Standing
from . import REMOVAL_MARK_SECONDS, Fills, Placement
from .ties import sort_key

# Entries freed per loop turn when an index is forgotten: a million freed at once held the event
# loop for 0.7-1 s (every award and read waited); 1,000 take about a millisecond.
RELEASE_CHUNK = 1_000
_SUBLIST = 1_000  # about how many keys each of a SortedList's sublists holds (its load factor)


class RankIndex:
    """Top-N in O(N), a user's rank in O(log n), ties to whoever reached the value first."""

    def __init__(self, *, ascending: bool = False) -> None:
        self.ascending = ascending
        self._order: SortedList = SortedList()
        self._by_user: dict[str, Standing] = {}
        # user id -> the seq of their entry an operator removed lately: no write as old places them
        self.removed: dict[str, int] = {}
        self.removed_at = 0.0  # time.monotonic() of the last removal (the marks go together)

    def _key(self, standing: Standing) -> tuple[int, int, int, str]:
        return sort_key(standing, self.ascending)

    def load(self, standings: list[Standing]) -> None:
        """Write standings in bulk; as with `put`, a newer standing already held wins."""
        if self.removed:
            standings = [s for s in standings if not self._superseded(s)]
        if not self._by_user:  # the fill at start: nothing held, one row per user
            by_user = {s.user_id: s for s in standings}
        else:
            by_user = dict(self._by_user)
            for s in standings:
                held = by_user.get(s.user_id)
                if held is None or held.seq < s.seq:
                    by_user[s.user_id] = s
        self._by_user = by_user
        self._order = SortedList(self._key(s) for s in by_user.values())

    def __len__(self) -> int:
        return len(self._by_user)

    def get(self, user_id: str) -> Standing | None:
        """The user's standing, if on the board."""
        return self._by_user.get(user_id)

    def rank(self, user_id: str) -> int | None:
        """1-based rank, or None when the user is not on the board."""
        standing = self._by_user.get(user_id)
        if standing is None:
            return None
        return int(self._order.bisect_left(self._key(standing))) + 1

    def _superseded(self, standing: Standing) -> bool:
        """Whether an operator removed an entry of this user no older than this standing."""
        removed = self.removed.get(standing.user_id)
        return removed is not None and removed >= standing.seq

    def put(self, standing: Standing) -> tuple[int | None, int]:
        """Insert or move a user; return (previous rank, new rank), or (None, -the rank it would
        have) for a write no newer than an entry of the user's an operator removed (placed nowhere)."""
        old = self._by_user.get(standing.user_id)
        previous = None
        if old is not None:
            previous = int(self._order.bisect_left(self._key(old))) + 1
            if old.seq >= standing.seq:  # an older write arriving late changes nothing
                return previous, previous
            self._order.remove(self._key(old))
        elif self.removed and self._superseded(standing):
            return None, -(int(self._order.bisect_left(self._key(standing))) + 1)
        self._by_user[standing.user_id] = standing
        key = self._key(standing)
        self._order.add(key)
        return previous, int(self._order.bisect_left(key)) + 1

    def remove(self, user_id: str) -> None:
        """Take a user off the index (the users behind move up one place)."""
        old = self._by_user.pop(user_id, None)
        if old is not None:
            self._order.remove(self._key(old))

    def take_off(self, user_id: str, seq: int) -> None:
        """Take off a user's entry an operator removed (`seq`: its write), unless a newer one is
        held, and keep the mark so that a write no newer arriving late places them nowhere."""
        held = self._by_user.get(user_id)
        if held is not None and held.seq > seq:
            return
        self.remove(user_id)
        self.removed[user_id] = max(seq, self.removed.get(user_id, seq))
        self.removed_at = time.monotonic()

    def rename(self, user_id: str, username: str) -> bool:
        """Refresh a display name (the order does not depend on it); True if it changed."""
        old = self._by_user.get(user_id)
        if old is None or old.username == username:
            return False
        self._by_user[user_id] = msgspec.structs.replace(old, username=username)
        return True

    def at_most(self, score: int) -> int:
        """How many users have at most this score."""
        if self.ascending:  # keys (score, ...): those before (score + 1,) have at most `score`
            return int(self._order.bisect_left((score + 1,)))
        # Keys are (-score, ...): those before (-score,) have a higher score.
        return len(self._by_user) - int(self._order.bisect_left((-score,)))

    def top(self, limit: int) -> list[tuple[int, Standing]]:
        """The first `limit` standings with their ranks."""
        return self.slice(1, limit)

    def release(self, count: int) -> bool:
        """Free about `count` entries of an index nobody reads any more (it is left unusable);
        True while entries remain."""
        by_user = self._by_user
        for _ in range(min(count, len(by_user))):
            by_user.popitem()
        sublists = self._order._lists  # the sorted list's own storage: whole sublists dropped at once
        for _ in range(min(max(1, count // _SUBLIST), len(sublists))):
            sublists.pop()
        return bool(by_user or sublists)

    def slice(self, first: int, last: int) -> list[tuple[int, Standing]]:
        """Standings ranked `first` to `last` inclusive (1-based)."""
        first = max(first, 1)
        if last < first:
            return []
        keys = self._order.islice(first - 1, last)
        return [(i, self._by_user[key[3]]) for i, key in enumerate(keys, start=first)]


_EMPTY = RankIndex()  # what a board period nobody wrote to reads as (never written to)


class MemoryRanking(Fills):
    """The `Ranking` of one process: a `RankIndex` per board period behind the async interface."""

    def __init__(self) -> None:
        super().__init__()
        self.indexes: dict[BoardPeriod, RankIndex] = {}
        self.excluded: set[str] = set()  # disqualified users: placed nowhere
        self._forgotten: list[RankIndex] = []  # indexes no longer read, freed by `release`

    def index(self, where: BoardPeriod) -> RankIndex:
        """The index of a board period, made empty on first use."""
        index = self.indexes.get(where)
        if index is None:
            index = self.indexes[where] = RankIndex(ascending=where.ascending)
        return index

    def _read(self, where: BoardPeriod) -> RankIndex:
        # Reads do not make indexes: a read of a period nobody wrote to must not keep one alive.
        return self.indexes.get(where, _EMPTY)

    async def load(self, where: BoardPeriod, standings: list[Standing], expire_ms: int | None) -> None:
        """Write every user of a board period but the excluded (newer standings already held win)."""
        excluded = self.excluded
        self.index(where).load([s for s in standings if s.user_id not in excluded] if excluded else standings)

    async def put(
        self, where: BoardPeriod, standing: Standing, *, expire_ms: int | None = None
    ) -> tuple[int | None, int]:
        """Place a user, unless excluded."""
        if standing.user_id in self.excluded:
            return None, 0
        return self.index(where).put(standing)

    async def put_all(self, placements: Sequence[Placement]) -> list[tuple[int | None, int]]:
        """Place one user on several board periods."""
        return [await self.put(where, standing, expire_ms=expire_ms) for where, standing, expire_ms in placements]

    async def top(self, where: BoardPeriod, limit: int) -> list[tuple[int, Standing]]:
        """The first `limit` standings."""
        return self._read(where).top(limit)

    async def slice(self, where: BoardPeriod, first: int, last: int) -> list[tuple[int, Standing]]:
        """Standings ranked first..last."""
        return self._read(where).slice(first, last)

    async def page(self, where: BoardPeriod, first: int, last: int) -> tuple[list[tuple[int, Standing]], int]:
        """Standings ranked first..last, and how many there are."""
        index = self._read(where)
        return index.slice(first, last), len(index)

    async def position(self, where: BoardPeriod, user_id: str) -> Position | None:
        """A user's standing and rank."""
        index = self._read(where)
        standing = index.get(user_id)
        rank = index.rank(user_id)
        if standing is None or rank is None:
            return None
        return Position(standing=standing, rank=rank, size=len(index))

    async def positions(self, where: BoardPeriod, user_ids: Sequence[str]) -> list[Position]:
        """Those of these users on the board, by rank."""
        index = self._read(where)
        found = []
        for user_id in dict.fromkeys(user_ids):
            standing, rank = index.get(user_id), index.rank(user_id)
            if standing is not None and rank is not None:
                found.append(Position(standing=standing, rank=rank, size=len(index)))
        return sorted(found, key=lambda p: p.rank)

    async def around(
        self, where: BoardPeriod, user_id: str, radius: int
    ) -> tuple[Position | None, list[tuple[int, Standing]], int]:
        """A user's place, the standings `radius` ranks either side, and the board's size."""
        index = self._read(where)
        position = await self.position(where, user_id)
        if position is None:
            return None, [], len(index)
        return position, index.slice(position.rank - radius, position.rank + radius), len(index)

    async def rename(self, user_id: str, username: str) -> bool:
        """Refresh a display name on every board period."""
        changed = False
        for index in self.indexes.values():
            changed = index.rename(user_id, username) or changed
        return changed

    async def ranked(self, where: BoardPeriod, first: int, last: int) -> list[tuple[int, str, int]]:
        """Users ranked first..last."""
        return [(rank, s.user_id, s.score) for rank, s in self._read(where).slice(first, last)]

    async def ranks(self, where: BoardPeriod, user_ids: list[str]) -> dict[str, tuple[int, int]]:
        """Ranks and scores of these users."""
        return {p.standing.user_id: (p.rank, p.standing.score) for p in await self.positions(where, user_ids)}

    async def size(self, where: BoardPeriod) -> int:
        """Users on the board."""
        return len(self._read(where))

    async def counts_at_most(self, where: BoardPeriod, bounds: Sequence[int]) -> list[int]:
        """Users with a score at most each bound."""
        index = self._read(where)
        return [index.at_most(bound) for bound in bounds]

    async def drop(self, where: BoardPeriod) -> None:
        """Forget a board period."""
        index = self.indexes.pop(where, None)
        if index is not None:
            self._forgotten.append(index)
            await self.release()

    async def remove(self, user_id: str, shelves: Sequence[BoardPeriod], *, forget: bool = True) -> None:
        """Take a user off these board periods (names live in the standings: they go with them)."""
        for where in shelves:
            if (index := self.indexes.get(where)) is not None:
                index.remove(user_id)
                if forget:
                    index.removed.pop(user_id, None)
        if forget:
            self.excluded.discard(user_id)

    async def take_off(self, where: BoardPeriod, entries: Sequence[tuple[str, int]]) -> None:
        """Take these removed entries off a board period, RELEASE_CHUNK per loop turn."""
        index = self.index(where)
        for start in range(0, len(entries), RELEASE_CHUNK):
            for user_id, seq in entries[start : start + RELEASE_CHUNK]:
                index.take_off(user_id, seq)
            await asyncio.sleep(0)

    async def exclude(self, user_id: str, shelves: Sequence[BoardPeriod]) -> None:
        """Take a user off these board periods and keep them off."""
        self.excluded.add(user_id)
        await self.remove(user_id, shelves, forget=False)

    async def include(self, user_id: str) -> None:
        """Let a user be placed again."""
        self.excluded.discard(user_id)

    async def exclude_all(self, user_ids: Sequence[str]) -> None:
        """Exclude these users."""
        self.excluded.update(user_ids)

    def keep_only(self, readable: Container[BoardPeriod]) -> int:
        """Forget every board period not readable any more (dropped periods, retired boards); how
        many. Their memory goes with `release`."""
        gone = [where for where in self.indexes if where not in readable]
        for where in gone:
            self._forgotten.append(self.indexes.pop(where))
        lately = time.monotonic() - REMOVAL_MARK_SECONDS
        for index in self.indexes.values():
            if index.removed and index.removed_at < lately:
                index.removed = {}
        return len(gone)

    async def release(self) -> None:
        """Free the forgotten indexes RELEASE_CHUNK entries per loop turn, so that awards and reads
        go on in between."""
        while self._forgotten:
            if not self._forgotten[-1].release(RELEASE_CHUNK):
                self._forgotten.pop()
            await asyncio.sleep(0)
