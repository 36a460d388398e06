"""Where ranks are read: one interface, in process memory (embedded) or in Redis (many processes)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol

import msgspec

from .leaderboard import Leaderboard, Standing
from .storage import UserRecord


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """A user's place: standing, 1-based rank, and how many users are on the board."""

    standing: Standing
    rank: int
    size: int


class Board(Protocol):
    """The rank index derived from the system of record. Writes are idempotent by `seq`: an
    older standing never replaces a newer one, so a rebuild may race live awards."""

    async def load(self, records: list[UserRecord]) -> None:
        """Write every user on the board (a rebuild from the database)."""

    async def put(self, standing: Standing) -> tuple[int | None, int]:
        """Place a user; (previous rank, new rank)."""

    async def top(self, limit: int) -> list[tuple[int, Standing]]:
        """The first `limit` standings with ranks."""

    async def position(self, user_id: str) -> Position | None:
        """A user's standing and rank, or None when not on the board."""

    async def rename(self, user_id: str, username: str) -> None:
        """Refresh a display name."""

    async def ranked(self, first: int, last: int) -> list[tuple[int, str, int]]:
        """(rank, user id, score) for ranks first..last inclusive."""

    async def ranks(self, user_ids: list[str]) -> dict[str, tuple[int, int]]:
        """(rank, score) of each of these users that is on the board."""

    async def size(self) -> int:
        """How many users are on the board."""

    def version(self) -> Hashable | None:
        """A value that changes with every change that can reach the first WATCHED_PLACES places
        (equal values: those places did not change in between), or None when nothing derived
        from the board may be cached."""


class MemoryBoard:
    """The embedded board: an order-statistic index in this process."""

    def __init__(self, index: Leaderboard | None = None) -> None:
        self.index = index or Leaderboard()

    async def load(self, records: list[UserRecord]) -> None:
        """Replace the index."""
        self.index.load(records)

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

    async def rename(self, user_id: str, username: str) -> None:
        """Refresh a display name."""
        self.index.rename(user_id, username)

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

    def version(self) -> int:
        """Changes with every load and rename, and every put that reaches the watched places."""
        return self.index.version


def percentile(rank: int, size: int) -> float:
    """100 * (N - rank) / N over the N users on the board, two decimals."""
    return round(100 * (size - rank) / size, 2)
