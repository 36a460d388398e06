"""Keeps the Redis ranking filled: at start, and whenever Redis comes back empty or missed an award."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Protocol

from ..errors import ServiceUnavailable
from ..fanout.redis import RedisFanout
from ..records import BoardPeriod
from ..tasks import pause, stop_if_cancelled
from . import StandingsSource
from .redis import RedisRanking

log = logging.getLogger(__name__)

CHECK_SECONDS = 1.0  # a flushed board is refilled within about this, plus the fill itself
# The rebuild lock's lease, renewed every third of it while the rebuild runs: a process killed
# mid-rebuild holds the lock this long at most, then another rebuilds.
REBUILD_LEASE_SECONDS = 5


class Source(StandingsSource, Protocol):
    """The system of record as a fill reads it: standings, and who is kept off every board."""

    async def disqualified(self) -> list[str]:
        """The ids of every disqualified user."""


# The board periods readable now, each with when it stops being readable (ms, None: never).
Shelves = Callable[[], Mapping[BoardPeriod, int | None]]


class Keeper:
    """Fills the shared ranking from the system of record when it needs it, one process at a
    time, and tells every process's viewers when it did. `shelves` is asked at each fill, so a
    fill loads the periods readable then."""

    def __init__(self, ranking: RedisRanking, source: Source, shelves: Shelves, fanout: RedisFanout) -> None:
        self.ranking = ranking
        self.source = source
        self.shelves = shelves
        self.fanout = fanout

    async def ensure_filled(self) -> bool:
        """Fill from the database if the ranking needs it and no other process is at it."""
        ranking = self.ranking
        if not await ranking.needs_load():
            return False
        mark = await ranking.lock_rebuild(REBUILD_LEASE_SECONDS)
        if mark is None:
            return False
        holding = asyncio.create_task(self._hold(mark), name="rebuild-lease")
        try:
            asked = await ranking.reload_asked()  # before the database is read: a later request stays
            log.info("rebuilding the Redis board from the database")
            # Redis may have lost who is disqualified with the boards: a placement still in flight
            # from before a disqualification finds them excluded again.
            await ranking.exclude_all(await self.source.disqualified())
            await ranking.fill(self.source, self.shelves())
            await self.fanout.reloaded()  # every process's viewers get the filled board
            if asked is not None:
                await ranking.reload_done(asked)
        finally:
            holding.cancel()
            await asyncio.wait([holding])  # (a cancellation of this task still propagates)
            await ranking.unlock_rebuild(mark)
        return True

    async def _hold(self, mark: str) -> None:
        """Renew the rebuild lock's lease until cancelled (the rebuild ended)."""
        while True:
            await asyncio.sleep(REBUILD_LEASE_SECONDS / 3)
            try:
                if not await self.ranking.renew_rebuild(mark, REBUILD_LEASE_SECONDS):
                    log.warning("the rebuild lock lapsed: another process may rebuild at the same time")
                    return
            except ServiceUnavailable:
                stop_if_cancelled()  # the rebuild meets the outage too, and ends

    async def run(self) -> None:
        """Check every second, for as long as the app runs; outages are waited out. First, unless
        this process filled the ranking itself, ask for a fill that reconciles it with the database
        (a fill keeps newer standings): the process this one replaces may have been killed between
        a commit and its ranking write, and only the database has that award."""
        asked = False
        while True:
            try:
                if not asked:
                    if not self.ranking.loads:
                        await self.ranking.ask_reload()
                    asked = True
                await self.ensure_filled()
            except ServiceUnavailable as exc:
                stop_if_cancelled()
                log.debug("board check postponed: %s", exc.message)
            except Exception:
                stop_if_cancelled()
                log.exception("board rebuild failed")
            await pause(CHECK_SECONDS)
