"""A board in use: its settings, the schedule of its periods, and the rank index of each period."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from ..errors import PeriodEnded, PeriodNotFound
from ..records import BoardPeriod
from ..settings import BoardSettings
from .periods import Period, Schedule

CURRENT, PREVIOUS = "current", "previous"
PERIOD_TRIES = 3  # a write's period may end while it waits for its transaction; twice in a row is a stuck clock
T = TypeVar("T")


async def in_current_periods(clock: Callable[[], int], write: Callable[[int], Awaitable[T]]) -> T:
    """`write(now)`, made again with a new reading of the clock when the store refused it because
    its period ended before its transaction began (PeriodEnded): a write counts in the period in
    which it commits, not the one of when it was asked for."""
    for _ in range(PERIOD_TRIES - 1):
        try:
            return await write(clock())
        except PeriodEnded:
            continue
    return await write(clock())


def first_end(periods: Iterable[Period]) -> int | None:
    """When the first of these periods ends (None when none does)."""
    return min((p.ends_ms for p in periods if p.ends_ms is not None), default=None)


class Board:
    """One board in use: its settings and the schedule of its periods."""

    __slots__ = ("ascending", "id", "schedule", "settings")

    def __init__(self, board_id: str, settings: BoardSettings) -> None:
        self.id = board_id
        self.settings = settings
        self.ascending = settings.order == "asc"
        self.schedule = Schedule(settings.reset, settings.timezone)

    @property
    def title(self) -> str:
        """The title shown, the id when none was given."""
        return self.settings.title or self.id

    def where(self, period: Period) -> BoardPeriod:
        """The rank index of one of this board's periods."""
        return BoardPeriod(board=self.id, period=period.id, ascending=self.ascending)

    def current(self, now_ms: int) -> Period:
        """The period a write at `now_ms` counts in."""
        return self.schedule.at(now_ms)

    def after(self, shown: Period, now_ms: int) -> Period | None:
        """The period current at `now_ms` if `shown` has ended by then, else None: a clock stepped
        back across a boundary does not take a live view back to a period it has seen end."""
        if shown.ends_ms is None or now_ms < shown.ends_ms:
            return None
        return self.current(now_ms)

    def kept(self, now_ms: int) -> list[Period]:
        """The readable periods: the current one first, then the kept finished ones, newest first."""
        return self.schedule.kept(now_ms, self.settings.keep_periods)

    def expire_ms(self, period: Period) -> int | None:
        """When a period stops being readable (None: never)."""
        return self.schedule.drop_ms(period, self.settings.keep_periods)

    def fallen(self, since_ms: int, until_ms: int) -> list[Period]:
        """The periods that stopped being readable after `since_ms` and by `until_ms`, newest first."""
        keep = self.settings.keep_periods
        # Newest first, each period ending where the one before it in the list starts: a period's
        # readable end is the end of the one `keep` places newer (drop_ms, without its walk per period).
        chain = self.kept(until_ms)
        found: list[Period] = []
        while (older := self.schedule.before(chain[-1])) is not None:
            chain.append(older)
            ends = chain[-1 - keep].ends_ms
            if ends is None or ends <= since_ms:
                break
            found.append(older)
        return found

    def period(self, spec: str, now_ms: int) -> Period:
        """`current`, `previous` or a period id, if readable; PERIOD_NOT_FOUND otherwise."""
        current = self.current(now_ms)
        if spec == CURRENT:
            return current
        found = self.schedule.before(current) if spec == PREVIOUS else self.schedule.parse(spec)
        if found is None or not self.schedule.readable(found, now_ms, self.settings.keep_periods):
            raise PeriodNotFound(details={"board": self.id, "period": spec})
        return found
