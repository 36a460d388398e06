"""Work submitted in one event-loop turn, handled together: the awards in flight share one Redis
round trip instead of each paying its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Handler = Callable[[list[T]], Awaitable[Sequence[R | Exception]]]


class TurnBatch(Generic[T, R]):
    """Items submitted during one loop turn go to one call of `handle`, in a task of its own, at
    the end of the turn; each submitter gets the result at its item's position (an exception
    instance is raised for that submitter alone). If the whole call fails, every item fails with
    its error; if it is cancelled, with `cancelled()`: nobody is left waiting.

    With `most_in_flight`, no more calls than that run at once: items submitted meanwhile wait
    and go together in one call when one ends (a slow call gathers the items of many turns). With
    `most_items`, a call takes at most that many, the oldest; the rest go in the next."""

    def __init__(
        self,
        handle: Handler[T, R],
        *,
        cancelled: Callable[[], Exception],
        most_in_flight: int | None = None,
        most_items: int | None = None,
    ) -> None:
        self._handle = handle
        self._cancelled = cancelled
        self._most = most_in_flight
        self._most_items = most_items
        self._queued: list[tuple[T, asyncio.Future[R]]] = []
        self._running: set[asyncio.Task[None]] = set()  # the loop keeps only weak references
        self._observers: list[Callable[[int], None]] = []

    async def submit(self, item: T) -> R:
        """Queue `item` for this turn's batch and wait for its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._flush)
        self._queued.append((item, future))
        return await future

    def observe(self, observer: Callable[[int], None]) -> None:
        """Call `observer` with the size of each batch from now on (tests, measurements)."""
        self._observers.append(observer)

    def _flush(self) -> None:
        if not self._queued or (self._most is not None and len(self._running) >= self._most):
            return  # nothing queued, or at the bound: the next call to end flushes them
        most = len(self._queued) if self._most_items is None else self._most_items
        queued, self._queued = self._queued[:most], self._queued[most:]
        for observer in self._observers:
            observer(len(queued))
        task = asyncio.get_running_loop().create_task(self._run(queued))
        self._running.add(task)
        task.add_done_callback(self._ended)
        if self._queued and (self._most is None or len(self._running) < self._most):
            task.get_loop().call_soon(self._flush)  # beyond `most_items`: the next call (else a call's end)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if self._most is not None:
            self._flush()  # what waited for a call to end, if anything

    async def _run(self, queued: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._handle([item for item, _ in queued])
            for (_, future), result in zip(queued, results, strict=True):
                _settle(future, result)
        except Exception as exc:
            for _, future in queued:
                _settle(future, exc)
        finally:
            for _, future in queued:
                if not future.done():  # the error is made only for one left waiting: most never are
                    future.set_exception(self._cancelled())


def _settle(future: asyncio.Future[R], result: R | Exception) -> None:
    if future.done():
        return
    if isinstance(result, Exception):
        future.set_exception(result)
    else:
        future.set_result(result)
