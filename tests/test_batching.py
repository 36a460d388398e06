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


async def test_with_one_call_in_flight_what_comes_meanwhile_goes_in_one_call_after_it() -> None:
    release = asyncio.Event()
    calls: list[list[int]] = []

    async def handle(items: list[int]) -> list[int | Exception]:
        calls.append(items)
        if len(calls) == 1:
            await release.wait()  # the first call is slow: the next turns' items wait for it
        return [i * 10 for i in items]

    batch: TurnBatch[int, int] = TurnBatch(handle, cancelled=Gone, most_in_flight=1)
    first = asyncio.ensure_future(batch.submit(1))
    while not calls:
        await asyncio.sleep(0)
    later = [asyncio.ensure_future(batch.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0)
    later.append(asyncio.ensure_future(batch.submit(4)))  # another turn, the first call still running
    for _ in range(5):
        await asyncio.sleep(0)
    assert calls == [[1]]  # nothing else started while it ran
    release.set()
    assert await asyncio.gather(first, *later) == [10, 20, 30, 40]
    assert calls == [[1], [2, 3, 4]]
    assert await batch.submit(5) == 50  # and when none is in flight, at the end of the turn as before
    assert calls[-1] == [5]


async def test_a_failed_call_in_flight_still_lets_the_waiting_items_go() -> None:
    calls: list[list[int]] = []
    gate = asyncio.Event()

    async def handle(items: list[int]) -> list[int | Exception]:
        calls.append(items)
        if len(calls) == 1:
            await gate.wait()
            raise ConnectionError("down")
        return list(items)

    batch: TurnBatch[int, int] = TurnBatch(handle, cancelled=Gone, most_in_flight=1)
    first = asyncio.ensure_future(batch.submit(1))
    while not calls:
        await asyncio.sleep(0)
    second = asyncio.ensure_future(batch.submit(2))
    await asyncio.sleep(0)
    gate.set()
    with pytest.raises(ConnectionError):
        await first
    assert await asyncio.wait_for(second, 5) == 2


async def test_a_call_takes_at_most_most_items_the_oldest_and_the_rest_go_next() -> None:
    async def handle(items: list[int]) -> list[int | Exception]:
        await asyncio.sleep(0)
        return [i * 10 for i in items]

    for most_in_flight in (None, 1):
        batch: TurnBatch[int, int] = TurnBatch(handle, cancelled=Gone, most_in_flight=most_in_flight, most_items=2)
        calls: list[int] = []
        batch.observe(calls.append)
        async with asyncio.timeout(5):  # those beyond a call's share are not left waiting
            assert await asyncio.gather(*(batch.submit(i) for i in range(5))) == [0, 10, 20, 30, 40]
        assert calls == [2, 2, 1]
