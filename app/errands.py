"""Short tasks started and not awaited where they start: kept referenced until done, a failure
logged, all of them awaitable at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine

log = logging.getLogger(__name__)


class Errands:
    """One owner's fire-and-forget tasks. The loop keeps only weak references to tasks, so a task
    nobody holds may vanish mid-way; these are held until they end."""

    def __init__(self, what: str) -> None:
        self.what = what  # named in the warning when one fails
        self._running: set[asyncio.Future[object]] = set()

    def start(self, work: asyncio.Future[object] | Coroutine[object, object, object]) -> None:
        """Run `work` in the background."""
        task = asyncio.ensure_future(work)
        self._running.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[object]) -> None:
        self._running.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("%s failed: %r", self.what, exc)

    async def finished(self) -> None:
        """Wait for every task started so far."""
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
