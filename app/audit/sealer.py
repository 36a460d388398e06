"""The background task that seals the history onto the audit chain, within SEAL_SECONDS of a
row's commit. Every process runs one; the store lets one seal at a time."""

from __future__ import annotations

import asyncio
import logging

from ..storage import Store
from ..tasks import pause

log = logging.getLogger(__name__)

SEAL_SECONDS = 1.0  # a committed row is sealed within about this long (it is "pending" until then)
SEAL_PAGE = 128  # rows the first transaction of a round seals: on SQLite's writer, about 1.6 ms of the loop


class Sealer:
    """Seals whatever the triggers queued, every SEAL_SECONDS, a page per transaction; while pages
    come back full (it is behind), each next page is twice the last, up to the store's
    `most_sealed`: fewer transactions for the same rows, so that it catches up under load."""

    def __init__(self, store: Store, *, every: float = SEAL_SECONDS, page: int = SEAL_PAGE) -> None:
        self.store = store
        self.every = every
        self.page = page

    async def run(self) -> None:
        """Seal until stopped; a failed round is logged and tried again next time."""
        while True:
            await pause(self.every)
            try:
                await self.catch_up()
            except Exception:
                log.exception("sealing the audit chain failed")

    async def catch_up(self) -> int:
        """Seal pages until a page is not full (nothing more queued, or another process seals); how many."""
        total, page, most = 0, self.page, max(self.page, self.store.most_sealed)
        while (sealed := await self.store.seal(page)) > 0:
            total += sealed
            if sealed < page:
                break
            page = min(2 * page, most)
            await asyncio.sleep(0)  # the loop's other work between two full pages
        return total
