"""Ranking: where ranks are read. One interface, kept in this process's memory (embedded) or in
Redis (shared by many processes); either is derived from the system of record and refilled from it."""

from __future__ import annotations

import gc
import logging
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Protocol

from ..metrics.tally import REBUILD_BOUNDS, Histogram
from ..records import BoardPeriod, Position, Standing

log = logging.getLogger(__name__)

TOP_SIZE = 10  # the places the live board and every award's answer show
# The most places a reader is shown (GET /top's largest limit). Changes further down do not
# change any answer derived from the top, so answers cached from it stay good.
WATCHED_PLACES = 100
FREEZE_AT_USERS = 100_000
# How long a board period remembers the entries an operator removed from it (from the last
# removal): an award placed this late after its commit is not expected (a write Redis missed is
# brought back by a rebuild from the database, which no longer has the entry).
REMOVAL_MARK_SECONDS = 600


# One standing to place on one board period, with the period's `expire_ms` (see Ranking).
Placement = tuple[BoardPeriod, Standing, int | None]


class StandingsSource(Protocol):
    """Where a ranking is filled from: the system of record."""

    async def standings(self, board: str, period: str) -> list[Standing]:
        """Every user on one period of one board."""


class Ranking(Protocol):
    """The rank indexes derived from the system of record, one per board period (`where`). Writes
    are idempotent by `seq`: an older standing never replaces a newer one, so a fill may race
    live writes. `expire_ms`: when the period stops being readable (None: never); an index may
    forget it from then on."""

    fills: Counter[str]  # fills so far by outcome, for the metrics (see Fills)
    fill_seconds: Histogram

    async def fill(self, source: StandingsSource, shelves: Mapping[BoardPeriod, int | None]) -> int:
        """Load these board periods (each with its `expire_ms`) from the system of record; how
        many standings there are."""

    async def put(
        self, where: BoardPeriod, standing: Standing, *, expire_ms: int | None = None
    ) -> tuple[int | None, int]:
        """Place a user; (previous rank, new rank). Placed nowhere: an excluded user, (None, 0); a
        write no newer than an entry of the user's an operator removed since, (None, -the rank it
        would have had): committed before the removal, it is as if placed, then removed."""

    async def put_all(self, placements: Sequence[Placement]) -> list[tuple[int | None, int]]:
        """`put` one user's standings on several board periods in one step; each one's ranks, in order."""

    async def top(self, where: BoardPeriod, limit: int) -> list[tuple[int, Standing]]:
        """The first `limit` standings with ranks."""

    async def slice(self, where: BoardPeriod, first: int, last: int) -> list[tuple[int, Standing]]:
        """The standings ranked first..last inclusive (1-based), with ranks."""

    async def page(self, where: BoardPeriod, first: int, last: int) -> tuple[list[tuple[int, Standing]], int]:
        """`slice` and the board's size, read together."""

    async def position(self, where: BoardPeriod, user_id: str) -> Position | None:
        """A user's standing and rank, or None when not on the board."""

    async def positions(self, where: BoardPeriod, user_ids: Sequence[str]) -> list[Position]:
        """The standings and ranks of those of these users on the board, by rank."""

    async def around(
        self, where: BoardPeriod, user_id: str, radius: int
    ) -> tuple[Position | None, list[tuple[int, Standing]], int]:
        """A user's place, the standings `radius` ranks either side and the board's size, read
        together ((None, [], size) when the user is not on the board)."""

    async def rename(self, user_id: str, username: str) -> bool:
        """Refresh the display name of a user on every board; True if it changed."""

    async def ranked(self, where: BoardPeriod, first: int, last: int) -> list[tuple[int, str, int]]:
        """(rank, user id, score) for ranks first..last inclusive."""

    async def ranks(self, where: BoardPeriod, user_ids: list[str]) -> dict[str, tuple[int, int]]:
        """(rank, score) of each of these users that is on the board."""

    async def size(self, where: BoardPeriod) -> int:
        """How many users are on the board."""

    async def counts_at_most(self, where: BoardPeriod, bounds: Sequence[int]) -> list[int]:
        """How many users on the board have a score at most each bound (ascending bounds)."""

    async def drop(self, where: BoardPeriod) -> None:
        """Forget a board period (it is no longer readable, or its board was retired)."""

    async def remove(self, user_id: str, shelves: Sequence[BoardPeriod], *, forget: bool = True) -> None:
        """Take a user off these board periods; `forget`: an erased user, whose name and exclusion go too."""

    async def take_off(self, where: BoardPeriod, entries: Sequence[tuple[str, int]]) -> None:
        """Take entries an operator removed, (user id, seq of the entry's write), off a board
        period, each unless a newer one is held; for REMOVAL_MARK_SECONDS after, a write of the
        user's no newer than that seq places them nowhere on it (it committed before the removal)."""

    async def exclude(self, user_id: str, shelves: Sequence[BoardPeriod]) -> None:
        """Take a user off these board periods and keep them off every board (disqualified), in one
        step: from then on no `put` or `load` places them, until `include`."""

    async def include(self, user_id: str) -> None:
        """Let an excluded user be placed again (reinstated); their standings are put back by the caller."""

    async def exclude_all(self, user_ids: Sequence[str]) -> None:
        """Exclude these users without taking them off anything (before a fill: the database's
        disqualified users, whose standings it does not read)."""


class Fills(ABC):
    """`fill` for an index that can `load` standings in bulk: the one way a ranking is filled.
    It counts its fills for the metrics: by outcome, and the seconds of those that succeeded."""

    def __init__(self) -> None:
        self.fills: Counter[str] = Counter()  # "succeeded" / "failed"
        self.fill_seconds = Histogram(REBUILD_BOUNDS)

    @abstractmethod
    async def load(self, where: BoardPeriod, standings: list[Standing], expire_ms: int | None) -> None:
        """Write these standings of one board period (newer ones already held win)."""

    async def fill(self, source: StandingsSource, shelves: Mapping[BoardPeriod, int | None]) -> int:
        """Load these board periods from the system of record; how many standings there are."""
        started = time.perf_counter()
        count = 0
        try:
            for where, expire_ms in shelves.items():
                standings = await source.standings(where.board, where.period)
                await self.load(where, standings, expire_ms)
                count += len(standings)
        except Exception:
            self.fills["failed"] += 1
            raise
        self.fills["succeeded"] += 1
        self.fill_seconds.observe(time.perf_counter() - started)
        seconds = round(time.perf_counter() - started, 3)
        if count >= FREEZE_AT_USERS:
            # A full collection walks every object: with a million standings in memory that is a
            # ~70 ms pause now and then. They hold no cycles, so the collector can skip them.
            gc.freeze()
        log.info(
            "leaderboards rebuilt: %d standings on %d board periods in %.3f s",
            count,
            len(shelves),
            seconds,
            extra={"seconds": seconds},
        )
        return count


def reaches_watched(previous_rank: int | None, rank: int) -> bool:
    """Whether a move between these ranks changes anything in the first WATCHED_PLACES places."""
    return rank <= WATCHED_PLACES or (previous_rank is not None and previous_rank <= WATCHED_PLACES)


def last_change(shown: list[tuple[int, Standing]]) -> int:
    """When these standings last changed (ms, the newest award among them); 0 for none."""
    return max((s.updated_ms for _, s in shown), default=0)


def percentile(rank: int, size: int) -> float:
    """100 * (N - rank) / N over the N users on the board, two decimals."""
    return round(100 * (size - rank) / size, 2)
