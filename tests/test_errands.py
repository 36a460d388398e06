"""Background errands: held until done, a failure logged by name, all awaitable."""

from __future__ import annotations

import asyncio

import pytest

from app.tasks import Errands


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
