"""The rank index: an order-statistic list derived from the database, rebuilt at start."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
from sortedcontainers import SortedList

from .storage import UserRecord


class Standing(msgspec.Struct, frozen=True, kw_only=True):
    """A user on the board. `seq` is the award that reached the current score."""

    user_id: str
    username: str
    score: int
    seq: int
    updated_ms: int


# The most places a reader is shown (GET /top's largest limit). Changes further down do not
# change any answer derived from the top, so they leave `Leaderboard.version` alone.
WATCHED_PLACES = 100

_Key = tuple[int, int, str]


def last_change(shown: list[tuple[int, Standing]]) -> int:
    """When these standings last changed (ms, the newest award among them); 0 for none."""
    return max((s.updated_ms for _, s in shown), default=0)


def _key(s: Standing) -> _Key:
    # Score descending, then who reached it first (lower award sequence), then id.
    return (-s.score, s.seq, s.user_id)


class Leaderboard:
    """Top-N in O(N), a user's rank in O(log n), ties to whoever reached the score first."""

    def __init__(self) -> None:
        self._order: SortedList = SortedList()
        self._by_user: dict[str, Standing] = {}
        # Bumped by every change that can reach the first WATCHED_PLACES places, so readers can
        # cache what they derive from them: most awards on a big board land further down.
        self.version = 0

    def load(self, records: Iterable[UserRecord]) -> None:
        """Replace the whole index with the database's users on the board."""
        standings = [
            Standing(user_id=r.user_id, username=r.username, score=r.score, seq=r.seq, updated_ms=r.updated_ms or 0)
            for r in records
            if r.seq is not None
        ]
        self._by_user = {s.user_id: s for s in standings}
        self._order = SortedList(_key(s) for s in standings)
        self.version += 1

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
        return int(self._order.bisect_left(_key(standing))) + 1

    def put(self, standing: Standing) -> tuple[int | None, int]:
        """Insert or move a user; return (previous rank, new rank)."""
        old = self._by_user.get(standing.user_id)
        previous = None
        if old is not None:
            previous = int(self._order.bisect_left(_key(old))) + 1
            if old.seq >= standing.seq:  # an older award arriving late changes nothing
                return previous, previous
            self._order.remove(_key(old))
        self._by_user[standing.user_id] = standing
        key = _key(standing)
        self._order.add(key)
        rank = int(self._order.bisect_left(key)) + 1
        if rank <= WATCHED_PLACES or (previous is not None and previous <= WATCHED_PLACES):
            self.version += 1
        return previous, rank

    def rename(self, user_id: str, username: str) -> None:
        """Refresh a display name; the order does not depend on it."""
        old = self._by_user.get(user_id)
        if old is not None and old.username != username:
            self._by_user[user_id] = msgspec.structs.replace(old, username=username)
            self.version += 1

    def top(self, limit: int) -> list[tuple[int, Standing]]:
        """The first `limit` standings with their ranks."""
        return self.slice(1, limit)

    def slice(self, first: int, last: int) -> list[tuple[int, Standing]]:
        """Standings ranked `first` to `last` inclusive (1-based)."""
        keys = self._order[max(first, 1) - 1 : max(last, 0)]
        return [(i, self._by_user[key[2]]) for i, key in enumerate(keys, start=max(first, 1))]
