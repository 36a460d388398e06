"""Retention of the award history (`storage.history_retention_days`): what is older goes, a window
of rows per transaction (storage/retention.py says which rows stay whatever their age)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from .storage import Store
from .storage.retention import Swept

Sweep = Callable[[int, int], Awaitable[Swept]]  # (cursor, before_ms) -> one window's outcome

DAY_MS = 86_400_000
# A row kept because an entry pointed at it may be free later (the entry moved on): each table is
# swept from its first id again this often.
RESCAN_MS = 3_600_000
MAX_WINDOWS = 1000  # windows per round: a large backlog is worked off over several rounds


class Retention:
    """Deletes the history older than the kept days, a window at a time, between others' writes."""

    def __init__(self, store: Store, days: int, clock: Callable[[], int]) -> None:
        self.store = store
        self.kept_ms = days * DAY_MS
        self.clock = clock
        # Board changes first: an award goes only once no change refers to it.
        self.cursors: dict[Sweep, int] = {store.sweep_changes: 0, store.sweep_awards: 0}
        self.swept_from_start = clock()

    async def purge(self) -> int:
        """One round over each table; how many rows went."""
        if not self.kept_ms:
            return 0
        now = self.clock()
        if now - self.swept_from_start >= RESCAN_MS:
            self.cursors = dict.fromkeys(self.cursors, 0)
            self.swept_from_start = now
        deleted, windows = 0, 0
        for sweep in self.cursors:
            while windows < MAX_WINDOWS:
                started = time.perf_counter()
                swept = await sweep(self.cursors[sweep], now - self.kept_ms)
                deleted, windows, self.cursors[sweep] = deleted + swept.deleted, windows + 1, swept.cursor
                if swept.done:
                    break
                # As long again for others' writes: a backlog takes at most half the database's time.
                await asyncio.sleep(time.perf_counter() - started)
        return deleted
