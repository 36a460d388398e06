"""The one way to run work in the background: long-lived tasks (`Background`, started and stopped
with the app) and short ones started without being awaited (`Errands`). Each is held until it
ends, since the loop keeps only weak references to tasks, and a failure is logged by name."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

STOP_SECONDS = 5.0
CleanupContext = Callable[[web.Application], AsyncIterator[None]]


class Background:
    """A task that runs for as long as the app does. `stop` cancels it and, for a loop that a
    client library may keep from seeing the cancellation (redis-py swallows one mid-call), also
    calls the loop's own `halt`; the wait is bounded, so a stuck task cannot hold the shutdown."""

    def __init__(
        self, name: str, run: Callable[[], Coroutine[Any, Any, None]], *, halt: Callable[[], None] | None = None
    ) -> None:
        self.name = name
        self._run = run
        self._halt = halt
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the task (once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)
            self._task.add_done_callback(self._ended)

    @property
    def running(self) -> bool:
        """Started and not ended."""
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Stop the task and wait for it, at most STOP_SECONDS."""
        task = self._task
        if task is None:
            return
        if self._halt is not None:
            self._halt()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=STOP_SECONDS)
        if not done:
            log.error("background task %s did not stop", self.name)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("background task %s failed", self.name, exc_info=exc)


def running(*tasks: Background) -> CleanupContext:
    """An app lifetime that runs these tasks: started in order, stopped in reverse."""

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        for task in tasks:
            task.start()
        yield
        for task in reversed(tasks):
            await task.stop()

    return lifetime


class Errands:
    """One owner's fire-and-forget tasks, all awaitable at shutdown."""

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


def stop_if_cancelled() -> None:
    """Re-raise a cancellation that a client library (redis-py) turned into a connection error, so
    that a background loop catching outages still stops when the app shuts down."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def pause(seconds: float) -> None:
    """Wait between two rounds of a background loop, unless the task was asked to stop meanwhile.

    A cancellation can also vanish without an error: on Python 3.11 `asyncio.wait_for`, which
    redis-py wraps around every write (a socket timeout is set), returns the result of a write done
    in the same loop turn as the cancellation arrived and drops the cancellation; only
    `cancelling()` still tells. Without this check the board keeper went round again after
    `Background.stop` had given up on it, with the app's Redis client closed: its pool opened a
    connection that nothing closed (in the tests, uvloop's close then waited on it for ever)."""
    stop_if_cancelled()
    await asyncio.sleep(seconds)
