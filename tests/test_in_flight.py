"""Writes under way per board period: the end of a period waits for its own, and for no other."""

from __future__ import annotations

import asyncio
import time

import pytest

from app import in_flight
from app.in_flight import InFlight
from app.records import BoardPeriod

WEEK_49 = BoardPeriod(board="weekly", period="2026-W49")
WEEK_50 = BoardPeriod(board="weekly", period="2026-W50")


async def test_nothing_under_way_lands_at_once() -> None:
    flights = InFlight()
    with flights.flight() as flight:
        flight.over([WEEK_50])
        async with asyncio.timeout(1):
            await flights.landed(WEEK_49)  # another period's write does not hold this one


async def test_a_period_lands_when_its_last_write_ends_stamped_again_or_not() -> None:
    flights = InFlight()
    landed = asyncio.Event()

    async def wait() -> None:
        await flights.landed(WEEK_49)
        landed.set()

    with flights.flight() as first:
        first.over([WEEK_49])
        with flights.flight() as second:
            second.over([WEEK_49])
            second.over([WEEK_50, WEEK_49])  # stamped again in the new week: it may still land in the old
            waiting = asyncio.create_task(wait())
            await asyncio.sleep(0.01)
            assert not landed.is_set()
        await asyncio.sleep(0.01)
        assert not landed.is_set()  # the first write is still under way
    await asyncio.wait_for(waiting, 1)
    async with asyncio.timeout(1):
        await flights.landed(WEEK_50)


async def test_a_write_that_fails_lands_too() -> None:
    flights = InFlight()
    with pytest.raises(RuntimeError), flights.flight() as flight:
        flight.over([WEEK_49])
        raise RuntimeError("the store is down")
    async with asyncio.timeout(1):
        await flights.landed(WEEK_49)


async def test_a_write_that_hangs_holds_the_period_end_no_longer_than_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(in_flight, "LANDING_WAIT_S", 0.05)
    flights = InFlight()
    with flights.flight([WEEK_49]):
        started = time.monotonic()
        async with asyncio.timeout(1):
            await flights.landed(WEEK_49)
        assert time.monotonic() - started >= 0.05  # it did wait, then gave up
