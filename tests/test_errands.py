"""Background errands: held until done, a failure logged by name, all awaitable; background loops
stop when asked, even when a library dropped the request."""

from __future__ import annotations

import asyncio

import pytest

from app.tasks import Background, Errands, pause


async def test_errands_are_waited_for_and_failures_logged(caplog: pytest.LogCaptureFixture) -> None:
    done: list[str] = []

    async def work(name: str) -> None:
        await asyncio.sleep(0.01)
        done.append(name)

    async def broken() -> None:
        raise RuntimeError("boom")

    errands = Errands("a test errand")
    errands.start(work("a"))
    errands.start(broken())
    errands.start(work("b"))
    await errands.finished()
    assert sorted(done) == ["a", "b"]
    assert [r.getMessage() for r in caplog.records] == ["a test errand failed: RuntimeError('boom')"]
    await errands.finished()  # nothing left: returns at once


async def test_a_loop_stops_when_a_write_dropped_its_cancellation() -> None:
    # On Python 3.11 asyncio.wait_for, which redis-py wraps around its writes, returns the result of
    # a write done in the same loop turn as the cancellation and drops the cancellation: the loop
    # must still end at its pause, not go round again with the app's clients closed.
    rounds = 0

    async def write() -> None:
        return None

    async def run() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            await asyncio.wait_for(write(), 1.0)
            await pause(0.01)

    loop = Background("a test loop", run)
    loop.start()
    await asyncio.sleep(0)  # the loop is in wait_for, its write scheduled ahead of the stop
    await loop.stop()
    assert not loop.running
    assert rounds == 1
