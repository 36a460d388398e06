"""The alarm a live board's broadcaster sets for the end of the period it shows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..boards.periods import Period


class PeriodEnd:
    """Calls `wake` just after the period watched ends. The end is computed from the period, so a
    restart loses nothing: a new process shows the period of its clock and watches its end."""

    def __init__(self, clock: Callable[[], int], wake: Callable[[], None]) -> None:
        self.clock = clock
        self.wake = wake
        self._timer: asyncio.TimerHandle | None = None
        self._off = False

    def watch(self, period: Period) -> None:
        """Set the alarm for this period's end, unless one is set or it never ends."""
        if self._timer is not None or self._off or period.ends_ms is None:
            return
        delay = max(0.0, (period.ends_ms - self.clock()) / 1000) + 0.001
        self._timer = asyncio.get_running_loop().call_later(delay, self._ring)

    def _ring(self) -> None:
        self._timer = None
        self.wake()

    def cancel(self) -> None:
        """Take the alarm off for good (the broadcaster stops): it is not set again."""
        self._off = True
        if self._timer is not None:
            self._timer.cancel()
