"""Writes on their way to the rank indexes: stamped for a board's period and not yet placed there,
so that the live top of a period that ended is read once this process's writes of it have landed."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterable

from .records import BoardPeriod

# How long the end of a period waits for its writes under way: their transactions and placing are
# milliseconds; a store or Redis that hangs must not hold the live boards with it.
LANDING_WAIT_S = 5.0


class Flight:
    """One write under way, for the length of a `with` block: the board periods it may land in."""

    __slots__ = ("_owner", "wheres")

    def __init__(self, owner: InFlight) -> None:
        self._owner = owner
        self.wheres: list[BoardPeriod] = []

    def over(self, wheres: Iterable[BoardPeriod]) -> None:
        """The write is stamped for these periods (a write stamped again in a new period keeps the
        earlier ones until it ends: it may yet have committed there)."""
        for where in wheres:
            if where not in self.wheres:
                self.wheres.append(where)
                self._owner._count[where] += 1

    def __enter__(self) -> Flight:
        return self

    def __exit__(self, *_: object) -> None:
        self._owner._ended(self.wheres)


class InFlight:
    """Counts this process's writes under way per board period, from their stamp (before the store
    checks the period, as their transaction begins) until they are placed or fail."""

    def __init__(self) -> None:
        self._count: Counter[BoardPeriod] = Counter()
        self._landed: dict[BoardPeriod, asyncio.Event] = {}

    def flight(self, wheres: Iterable[BoardPeriod] = ()) -> Flight:
        """A write under way, stamped for `wheres` so far: `with in_flight.flight() as flight: ...`."""
        flight = Flight(self)
        flight.over(wheres)
        return flight

    def _ended(self, wheres: list[BoardPeriod]) -> None:
        for where in wheres:
            self._count[where] -= 1
            if not self._count[where]:
                del self._count[where]
                if (landed := self._landed.pop(where, None)) is not None:
                    landed.set()

    async def landed(self, where: BoardPeriod) -> None:
        """Return once no write of this period is under way (at most LANDING_WAIT_S). Called once
        the period has ended, when no write is stamped for it any more: only fewer can be under way."""
        if where not in self._count:
            return
        landed = self._landed.setdefault(where, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LANDING_WAIT_S):
                await landed.wait()
