"""Lets the Redis keys of board periods go once they stop being readable: every process UNLINKs
them (Redis frees them in a background thread), a little after the period's readable end by its
own clock. Their PEXPIRE (ranking/redis.py, EXPIRY_MARGIN_MS) is the backstop.

Which keys: the periods the catalog says fell out of `keep_periods` within the backstop's margin,
computed from each board's schedule, not found by SCAN: every process knows them without reading
Redis, and a SCAN would walk every key of the deployment (nonces, limits, slots) to find a few.
Every period whose backstop may still be pending is asked for at each sweep, so a process started
after rollovers that no process swept lets those go too. A retired board's readable periods fall at
its retirement (the catalog keeps the retired boards for this): a board never reset has no other end,
and no backstop, so each process's first sweep asks for every retired board's, however long ago it
was retired (all processes may have been down past the margin). Periods a lowered keep_periods put
out of reach before the margin are left to the backstop."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from ..clock import now_ms
from ..errors import ServiceUnavailable
from ..records import BoardPeriod
from ..tasks import pause, stop_if_cancelled
from .redis import RedisRanking

log = logging.getLogger(__name__)

# How long after a period's readable end, by this process's clock, its keys are let go. Each
# process computes the end from its own clock: one running behind still reads (and, with
# keep_periods 0, writes) the period until its clock gets there. 30 s is three times the leeway
# the bearer checks already allow for skew between clocks (auth.leeway_seconds, 10 by default).
UNLINK_AFTER_MS = 30_000
# So the keys go 30-40 s after the end. A sweep is one UNLINK of the periods that ended within the
# margin (none, most of the time: it sends nothing then).
SWEEP_SECONDS = 10.0


class Fallen(Protocol):
    def __call__(self, since_ms: int, until_ms: int, *, every_retired: bool = False) -> Sequence[BoardPeriod]:
        """The board periods that stopped being readable after `since_ms` and by `until_ms` (with
        `every_retired`, every retired board's however long ago)."""
        ...


class Sweeper:
    """Unlinks the keys of the board periods no longer readable. Any process may, as often as it
    likes: unlinking keys that are gone does nothing."""

    def __init__(self, ranking: RedisRanking, fallen: Fallen, clock: Callable[[], int] = now_ms) -> None:
        self.ranking = ranking
        self.fallen = fallen
        self.clock = clock
        self.swept = False  # a sweep went through: retirements before the margin were let go

    async def sweep(self) -> int:
        """Unlink the keys of every period whose readable end is at least UNLINK_AFTER_MS past
        and whose backstop may not have fired yet; how many keys there were."""
        until = self.clock() - UNLINK_AFTER_MS
        # Every period since the backstop's margin, not only those since the last sweep: a process
        # started after a rollover that no process swept, or a write that landed in a period after
        # its keys went (one that started before its end), leaves keys only a later sweep finds.
        gone = self.fallen(until - self.ranking.expiry_margin_ms, until, every_retired=not self.swept)
        count = await self.ranking.unlink(gone) if gone else 0
        self.swept = True
        if count:
            log.info("unlinked %d Redis keys of board periods no longer readable", count)
        return count

    async def run(self) -> None:
        """Sweep every SWEEP_SECONDS for as long as the app runs; outages are waited out."""
        while True:
            try:
                await self.sweep()
            except ServiceUnavailable as exc:
                stop_if_cancelled()
                log.debug("board period sweep postponed: %s", exc.message)
            except Exception:
                stop_if_cancelled()
                log.exception("board period sweep failed")
            await pause(SWEEP_SECONDS)
