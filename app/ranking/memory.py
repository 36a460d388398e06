"""The embedded ranking: an order-statistic list in this process, filled from the database at start."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from sortedcontainers import SortedList

from ..records import Position, Standing
from . import Fills
from .ties import sort_key


class RankIndex:
    """Top-N in O(N), a user's rank in O(log n), ties to whoever reached the score first."""

    def __init__(self) -> None:
        self._order: SortedList = SortedList()
        self._by_user: dict[str, Standing] = {}

    def load(self, standings: list[Standing]) -> None:
        """Write standings in bulk; as with `put`, a newer standing already held wins."""
        if not self._by_user:  # the fill at start: nothing held, one row per user
            by_user = {s.user_id: s for s in standings}
        else:
            by_user = dict(self._by_user)
            for s in standings:
                held = by_user.get(s.user_id)
                if held is None or held.seq < s.seq:
                    by_user[s.user_id] = s
        self._by_user = by_user
        self._order = SortedList(sort_key(s) for s in by_user.values())

    def __len__(self) -> int:
        return len(self._by_user)

    def get(self, user_id: str) -> Standing | None:
        """The user's standing, if on the board."""
        return self._by_user.get(user_id)

    def rank(self, user_id: str) -> int | None:
        """1-based rank, or None when the user has no award."""
        standing = self._by_user.get(user_id)
        if standing is None:
            return None
        return int(self._order.bisect_left(sort_key(standing))) + 1

    def put(self, standing: Standing) -> tuple[int | None, int]:
        """Insert or move a user; return (previous rank, new rank)."""
        old = self._by_user.get(standing.user_id)
        previous = None
        if old is not None:
            previous = int(self._order.bisect_left(sort_key(old))) + 1
            if old.seq >= standing.seq:  # an older award arriving late changes nothing
                return previous, previous
            self._order.remove(sort_key(old))
        self._by_user[standing.user_id] = standing
        key = sort_key(standing)
        self._order.add(key)
        return previous, int(self._order.bisect_left(key)) + 1

    def rename(self, user_id: str, username: str) -> bool:
        """Refresh a display name (the order does not depend on it); True if it changed."""
        old = self._by_user.get(user_id)
        if old is None or old.username == username:
            return False
        self._by_user[user_id] = msgspec.structs.replace(old, username=username)
        return True

    def at_most(self, score: int) -> int:
        """How many users have at most this score."""
        # Keys are (-score, seq, user): those before (-score,) have a higher score.
        return len(self._by_user) - int(self._order.bisect_left((-score,)))

    def top(self, limit: int) -> list[tuple[int, Standing]]:
        """The first `limit` standings with their ranks."""
        return self.slice(1, limit)

    def slice(self, first: int, last: int) -> list[tuple[int, Standing]]:
        """Standings ranked `first` to `last` inclusive (1-based)."""
        keys = self._order[max(first, 1) - 1 : max(last, 0)]
        return [(i, self._by_user[key[2]]) for i, key in enumerate(keys, start=max(first, 1))]


class MemoryRanking(Fills):
    """The `Ranking` of one process: a `RankIndex` behind the async interface."""

    def __init__(self, index: RankIndex | None = None) -> None:
        super().__init__()
        self.index = index or RankIndex()

    async def load(self, standings: list[Standing]) -> None:
        """Write every user (newer standings already held win)."""
        self.index.load(standings)

    async def put(self, standing: Standing) -> tuple[int | None, int]:
        """Place a user."""
        return self.index.put(standing)

    async def top(self, limit: int) -> list[tuple[int, Standing]]:
        """The first `limit` standings."""
        return self.index.top(limit)

    async def position(self, user_id: str) -> Position | None:
        """A user's standing and rank."""
        standing = self.index.get(user_id)
        rank = self.index.rank(user_id)
        if standing is None or rank is None:
            return None
        return Position(standing=standing, rank=rank, size=len(self.index))

    async def rename(self, user_id: str, username: str) -> bool:
        """Refresh a display name."""
        return self.index.rename(user_id, username)

    async def ranked(self, first: int, last: int) -> list[tuple[int, str, int]]:
        """Users ranked first..last."""
        return [(rank, s.user_id, s.score) for rank, s in self.index.slice(first, last)]

    async def ranks(self, user_ids: list[str]) -> dict[str, tuple[int, int]]:
        """Ranks and scores of these users."""
        found = {}
        for user_id in user_ids:
            standing, rank = self.index.get(user_id), self.index.rank(user_id)
            if standing is not None and rank is not None:
                found[user_id] = (rank, standing.score)
        return found

    async def size(self) -> int:
        """Users on the board."""
        return len(self.index)

    async def counts_at_most(self, bounds: Sequence[int]) -> list[int]:
        """Users with a score at most each bound."""
        return [self.index.at_most(bound) for bound in bounds]
