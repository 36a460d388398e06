"""Work of one loop turn handled together: each submitter gets its own result, nobody waits for ever."""

from __future__ import annotations

import asyncio

import pytest

from app.batching import TurnBatch


class Gone(Exception):
    pass


async def test_one_batch_per_turn_each_result_to_its_submitter() -> None:
    async def handle(items: list[int]) -> list[int | Exception]:
        return [ValueError(str(i)) if i < 0 else i * 10 for i in items]

    batch: TurnBatch[int, int] = TurnBatch(handle, cancelled=Gone)
    sizes: list[int] = []
    batch.observe(sizes.append)
    results = await asyncio.gather(*(batch.submit(i) for i in (1, -2, 3)), return_exceptions=True)
    assert results[0] == 10 and results[2] == 30
    assert isinstance(results[1], ValueError) and str(results[1]) == "-2"  # for its submitter alone
    assert await batch.submit(4) == 40
    assert sizes == [3, 1]


async def test_a_failed_batch_fails_every_item_and_a_cancelled_one_leaves_nobody_waiting() -> None:
    async def broken(items: list[int]) -> list[int | Exception]:
        raise ConnectionError("down")

    failing: TurnBatch[int, int] = TurnBatch(broken, cancelled=Gone)
    results = await asyncio.gather(failing.submit(1), failing.submit(2), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)

    started = asyncio.Event()

    async def slow(items: list[int]) -> list[int | Exception]:
        started.set()
        await asyncio.sleep(60)
        return list(items)

    stuck: TurnBatch[int, int] = TurnBatch(slow, cancelled=Gone)
    waiter = asyncio.ensure_future(stuck.submit(1))
    await started.wait()
    for task in asyncio.all_tasks():
        if task.get_coro().__qualname__.startswith("TurnBatch._run"):  # type: ignore[union-attr]
            task.cancel()
    with pytest.raises(Gone):
        await asyncio.wait_for(waiter, 5)
