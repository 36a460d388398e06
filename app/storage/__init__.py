"""Storage: the system of record behind one narrow interface. One schema (schema.py) and one set
of operations (operations.py) serve both backends, sqlite.py (group-committed by group_commit.py)
and postgres.py."""

from __future__ import annotations

from typing import Protocol

from ..metrics.tally import Histogram
from ..records import Award, AwardClaim, TokenGrant, UserRecord


class Store(Protocol):
    """The system of record. Every write is one transaction; awards are exactly-once."""

    round_trips: Histogram  # seconds of each transaction (SQLite: each group commit), for the metrics

    def pool_usage(self) -> tuple[int, int] | None:
        """(connections in use, the pool's size), or None for a store without a pool."""

    async def open(self) -> None:
        """Connect and apply migrations."""

    async def close(self) -> None:
        """Flush pending writes and disconnect; safe to call twice."""

    async def ping(self) -> None:
        """Raise if the store cannot be reached."""

    async def grant(self, grant: TokenGrant, *, max_unused: int | None = None) -> None:
        """Record an issued token; refuse an action the user already completed, and a user who
        already holds `max_unused` unexpired unused tokens (checked in the same transaction)."""

    async def award(self, claim: AwardClaim) -> Award:
        """Consume the token and raise the score in one transaction, or raise a domain error."""

    async def user(self, user_id: str) -> UserRecord | None:
        """One user's row."""

    async def standings(self) -> list[UserRecord]:
        """Every user on the board, for rebuilding the rank index."""

    async def purge_tokens(self, expired_before_ms: int) -> int:
        """Delete token rows that expired before the given time; return how many."""
