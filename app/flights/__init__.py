"""Writes on their way to the rank indexes: stamped for a board's period and not yet placed there,
so that the live top of a period that ended is read once the writes of it under way have landed.
Counted in this process, and, for writes stamped near their period's end, also where every
process sees them (`SharedFlights`: Redis, in the Redis modes). Processes are assumed to read
clocks that agree, as they must for the boundary itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Protocol

from ..boards.catalog import Catalog
from ..errors import ServiceUnavailable
from ..records import BoardPeriod

log = logging.getLogger(__name__)

# How long the end of a period waits for its writes under way: their transactions and placing are
# milliseconds; a store or Redis that hangs must not hold the live boards with it.
LANDING_WAIT_S = 5.0
# A write stamped this close to its period's end (or later) is told to every process. One stamped
# earlier that waits this long for its transaction (a group commit's queue, a database pool) and
# then commits just before the end is counted by its own process only; writes mid-period send
# nothing to Redis.
NEAR_END_MS = 30_000
DEADLINE_MS = NEAR_END_MS + round(LANDING_WAIT_S * 1000)  # a mark no process landed holds nobody after
SHARED_POLL_S = 0.005  # how often the end looks again at the other processes' writes


class SharedFlights(Protocol):
    """Writes under way as every process sees them, each until it lands or its deadline passes (a
    process that died mid-write holds nobody beyond that)."""

    async def board(self, flight_id: str, wheres: list[BoardPeriod], deadline_ms: int) -> None:
        """A write is under way for these periods."""

    async def land(self, flight_id: str, wheres: list[BoardPeriod]) -> None:
        """It has landed (placed, or failed)."""

    async def flying(self, where: BoardPeriod, now_ms: int) -> int:
        """How many writes of this period are under way, past deadlines left out.

        Each method raises ServiceUnavailable when Redis cannot do it, whatever the reason."""


class Flight:
    """One write under way, for the length of an `async with` block: the periods it may land in."""

    __slots__ = ("_id", "_owner", "_shared", "wheres")

    def __init__(self, owner: InFlight) -> None:
        self._owner = owner
        self._id = ""
        self.wheres: list[BoardPeriod] = []
        self._shared: list[BoardPeriod] = []  # the ones told to every process

    async def over(self, wheres: Iterable[BoardPeriod]) -> None:
        """The write is stamped for these periods, before its transaction begins (a write stamped
        again in a new period keeps the earlier ones until it ends: it may yet have committed there)."""
        owner = self._owner
        near: list[BoardPeriod] = []
        for where in wheres:
            if where not in self.wheres:
                self.wheres.append(where)
                owner._count[where] += 1
                if owner.shared is not None and owner.near_end(where):
                    near.append(where)
        if near and owner.shared is not None:
            self._id = self._id or secrets.token_hex(8)
            # Landed at the end even if this is cancelled or times out after Redis applied it: a
            # mark left behind would hold every other process's end until its deadline.
            self._shared += near
            try:
                await owner.shared.board(self._id, near, owner.clock() + DEADLINE_MS)
            except ServiceUnavailable:  # the write goes on: only other processes' ends may miss it
                log.warning("a write near its period's end was not shared: Redis is unavailable")

    async def __aenter__(self) -> Flight:
        return self

    async def __aexit__(self, *_: object) -> None:
        try:
            if self._shared and self._owner.shared is not None:
                with contextlib.suppress(ServiceUnavailable):  # its deadline lets it go
                    await self._owner.shared.land(self._id, self._shared)
        finally:
            self._owner._ended(self.wheres)


class InFlight:
    """Counts the writes under way per board period, from their stamp (before the store checks the
    period, as their transaction begins) until they are placed or fail."""

    def __init__(self, catalog: Catalog, clock: Callable[[], int], shared: SharedFlights | None = None) -> None:
        self.catalog = catalog
        self.clock = clock
        self.shared = shared  # None: one process (embedded), whose own count is the whole
        self._count: Counter[BoardPeriod] = Counter()
        self._landed: dict[BoardPeriod, asyncio.Event] = {}

    def flight(self) -> Flight:
        """A write under way: `async with in_flight.flight() as flight: await flight.over(...)`."""
        return Flight(self)

    def near_end(self, where: BoardPeriod) -> bool:
        """Whether the period ends within NEAR_END_MS (or has ended), by this process's clock."""
        board = self.catalog.find(where.board)
        if board is None:
            return False
        now = self.clock()
        current = board.current(now)  # the schedule keeps the current span: no new computation
        if current.id != where.period:
            return True  # ended: an approval or an adjustment landing in a kept period
        return current.ends_ms is not None and current.ends_ms - now <= NEAR_END_MS

    def _ended(self, wheres: list[BoardPeriod]) -> None:
        for where in wheres:
            self._count[where] -= 1
            if not self._count[where]:
                del self._count[where]
                if (landed := self._landed.pop(where, None)) is not None:
                    landed.set()

    async def landed(self, where: BoardPeriod) -> None:
        """Return once no write of this period is under way, here or (shared) in any process, at
        most LANDING_WAIT_S. Called once the period has ended, when no award or trusted write is
        stamped for it any more: only fewer can be under way (operators may still act on it)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LANDING_WAIT_S):
                if where in self._count:
                    await self._landed.setdefault(where, asyncio.Event()).wait()
                if self.shared is not None:
                    await self._shared_landed(where)

    async def _shared_landed(self, where: BoardPeriod) -> None:
        assert self.shared is not None
        started = time.monotonic()
        while True:
            try:
                if not await self.shared.flying(where, self.clock()):
                    return
            except ServiceUnavailable:
                return  # nothing to wait for that can be seen
            await asyncio.sleep(SHARED_POLL_S if time.monotonic() - started < 0.1 else 4 * SHARED_POLL_S)
