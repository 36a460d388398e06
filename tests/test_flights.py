"""Writes under way per board period: the end of a period waits for its own, and for no other; in
the Redis modes for those of every process that were stamped near the end, and a process that died
mid-write, or a Redis that is down, holds nobody for long."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from app import flights
from app.boards.catalog import Catalog
from app.flights import NEAR_END_MS, InFlight
from app.flights.redis import RedisFlights
from app.records import BoardPeriod
from app.redis_client import Keys, TurnPipeline, connect
from app.settings import BoardSettings

from .boards.scene import NEXT_MONDAY_MS, WEDNESDAY_MS, Clock
from .isolation import REDIS_URL

CATALOG = Catalog("global", {"global": BoardSettings(), "weekly": BoardSettings(reset="weekly")})
WEEK_49 = BoardPeriod(board="weekly", period="2026-W49")
WEEK_50 = BoardPeriod(board="weekly", period="2026-W50")
ALL = BoardPeriod(board="global", period="all")


def local(clock: Clock | None = None) -> InFlight:
    """One process's count, nothing shared (the embedded set-up)."""
    return InFlight(CATALOG, clock or Clock())


async def test_nothing_under_way_lands_at_once() -> None:
    in_flight = local()
    async with in_flight.flight() as flight:
        await flight.over([WEEK_50])
        async with asyncio.timeout(1):
            await in_flight.landed(WEEK_49)  # another period's write does not hold this one


async def test_a_period_lands_when_its_last_write_ends_stamped_again_or_not() -> None:
    in_flight = local()
    landed = asyncio.Event()

    async def wait() -> None:
        await in_flight.landed(WEEK_49)
        landed.set()

    async with in_flight.flight() as first:
        await first.over([WEEK_49])
        async with in_flight.flight() as second:
            await second.over([WEEK_49])
            await second.over([WEEK_50, WEEK_49])  # stamped again in the new week: it may still land in the old
            waiting = asyncio.create_task(wait())
            await asyncio.sleep(0.01)
            assert not landed.is_set()
        await asyncio.sleep(0.01)
        assert not landed.is_set()  # the first write is still under way
    await asyncio.wait_for(waiting, 1)
    async with asyncio.timeout(1):
        await in_flight.landed(WEEK_50)


async def test_a_write_that_fails_lands_too() -> None:
    in_flight = local()
    with pytest.raises(RuntimeError):
        async with in_flight.flight() as flight:
            await flight.over([WEEK_49])
            raise RuntimeError("the store is down")
    async with asyncio.timeout(1):
        await in_flight.landed(WEEK_49)


async def test_a_write_that_hangs_holds_the_period_end_no_longer_than_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(flights, "LANDING_WAIT_S", 0.05)
    in_flight = local()
    async with in_flight.flight() as flight:
        await flight.over([WEEK_49])
        started = time.monotonic()
        async with asyncio.timeout(1):
            await in_flight.landed(WEEK_49)
        assert time.monotonic() - started >= 0.04  # it did wait (the loop's timers are coarse), then gave up


def test_near_the_end_is_the_last_stretch_of_a_period_and_after() -> None:
    clock = Clock(NEXT_MONDAY_MS - NEAR_END_MS - 1)
    in_flight = local(clock)
    assert not in_flight.near_end(WEEK_49)
    clock.now_ms += 1
    assert in_flight.near_end(WEEK_49)
    clock.now_ms = NEXT_MONDAY_MS + 1
    assert in_flight.near_end(WEEK_49)  # ended: an approval or an adjustment of a kept period
    assert not in_flight.near_end(WEEK_50) and not in_flight.near_end(ALL)
    assert not in_flight.near_end(BoardPeriod(board="retired", period="2026-W49"))


@pytest.fixture
async def shared(redis_prefix: str) -> AsyncIterator[RedisFlights]:
    """The Redis side under the test's own prefix."""
    client = connect(REDIS_URL, pool_size=2)
    try:
        yield RedisFlights(client, Keys(redis_prefix), TurnPipeline(client))
    finally:
        await client.aclose()


async def test_redis_counts_each_write_until_it_lands_or_its_deadline_passes(shared: RedisFlights) -> None:
    await shared.board("a", [WEEK_49, ALL], deadline_ms=1_000)
    await shared.board("b", [WEEK_49], deadline_ms=2_000)
    assert await shared.flying(WEEK_49, now_ms=500) == 2
    assert await shared.flying(ALL, now_ms=500) == 1
    await shared.land("a", [WEEK_49, ALL])
    assert await shared.flying(WEEK_49, now_ms=500) == 1 and await shared.flying(ALL, now_ms=500) == 0
    assert await shared.flying(WEEK_49, now_ms=2_000) == 1  # due at its deadline, not before
    assert await shared.flying(WEEK_49, now_ms=2_001) == 0  # its process died mid-write: let go
    assert await shared.flying(WEEK_50, now_ms=0) == 0


async def test_the_end_waits_for_another_processs_write_stamped_near_it(shared: RedisFlights) -> None:
    clock = Clock(NEXT_MONDAY_MS - 1000)
    here, there = InFlight(CATALOG, clock, shared), InFlight(CATALOG, clock, shared)
    landed = asyncio.Event()

    async def end_of_week() -> None:
        await here.landed(WEEK_49)
        landed.set()

    async with there.flight() as flight:
        await flight.over([WEEK_49, ALL])
        clock.now_ms = NEXT_MONDAY_MS + 1
        waiting = asyncio.create_task(end_of_week())
        await asyncio.sleep(0.1)
        assert not landed.is_set()  # the other process's write is still under way
    await asyncio.wait_for(waiting, 1)
    assert await shared.flying(WEEK_49, clock()) == 0


async def test_a_write_far_from_its_end_is_not_shared(shared: RedisFlights) -> None:
    clock = Clock(WEDNESDAY_MS)
    here, there = InFlight(CATALOG, clock, shared), InFlight(CATALOG, clock, shared)
    async with there.flight() as flight:
        await flight.over([WEEK_49])
        assert await shared.flying(WEEK_49, clock()) == 0  # no Redis command in the week's middle
        async with asyncio.timeout(1):
            await here.landed(WEEK_49)  # only its own process waits for it


async def neither_fails_the_write_nor_holds_the_end(broken: RedisFlights) -> None:
    """A write near its period's end goes on without its mark, and the end does not wait."""
    clock = Clock(NEXT_MONDAY_MS - 1000)
    here, there = InFlight(CATALOG, clock, broken), InFlight(CATALOG, clock, broken)
    async with there.flight() as flight:
        await flight.over([WEEK_49])  # not shared, and the write goes on
    clock.now_ms = NEXT_MONDAY_MS + 1
    async with asyncio.timeout(flights.LANDING_WAIT_S / 2):
        await here.landed(WEEK_49)


async def test_redis_down_neither_fails_the_write_nor_holds_the_end() -> None:
    client = connect("redis://127.0.0.1:9/0", pool_size=1)  # nothing listens there
    try:
        await neither_fails_the_write_nor_holds_the_end(RedisFlights(client, Keys("down"), TurnPipeline(client)))
    finally:
        await client.aclose()


async def test_a_redis_that_refuses_neither_fails_the_write_nor_holds_the_end(
    shared: RedisFlights, redis_prefix: str
) -> None:
    # Not an outage: Redis answers with an error (here WRONGTYPE; a replica's READONLY, MISCONF or
    # an out-of-memory refusal come back the same way).
    client = connect(REDIS_URL, pool_size=1)
    try:
        await client.set(Keys(redis_prefix).flights("weekly", "2026-W49"), "not a sorted set")
        await neither_fails_the_write_nor_holds_the_end(shared)
    finally:
        await client.aclose()


async def test_a_write_whose_mark_cannot_be_taken_off_still_lands_in_its_process(
    shared: RedisFlights, redis_prefix: str
) -> None:
    client = connect(REDIS_URL, pool_size=1)
    try:
        clock = Clock(NEXT_MONDAY_MS - 1000)
        in_flight = InFlight(CATALOG, clock, shared)
        async with in_flight.flight() as flight:
            await flight.over([WEEK_49])
            assert await shared.flying(WEEK_49, clock()) == 1
            key = Keys(redis_prefix).flights("weekly", "2026-W49")
            await client.delete(key)
            await client.set(key, "not a sorted set")  # the mark's removal will be refused
        # No error for the write that committed, and its own process's end does not wait for it.
        await client.delete(key)
        clock.now_ms = NEXT_MONDAY_MS + 1
        async with asyncio.timeout(1):
            await in_flight.landed(WEEK_49)
    finally:
        await client.aclose()
