"""A board period's Redis keys go when it stops being readable: unlinked by any process's sweep a
little after its readable end by that process's clock, the keys' expiry (the readable end plus a
margin) only the backstop. Real Redis, a prefix of each test's own, clocks the tests move."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from app.boards.catalog import Catalog, settings_text
from app.errors import PeriodNotFound
from app.ranking.redis import EXPIRY_MARGIN_MS, RedisRanking
from app.ranking.sweep import UNLINK_AFTER_MS, Sweeper
from app.records import BoardPeriod, Standing
from app.redis_client import Keys, connect
from app.settings import BoardSettings

from ..isolation import REDIS_URL
from ..real_servers import RedisServer
from .scene import NEXT_MONDAY_MS, WEDNESDAY_MS, Clock

MINUTE_MS = 60_000
WEEK_MS = 7 * 86_400_000
# Every 10 minutes, at :00, :10, ... (UTC); a period stops being readable at its end.
TEN_MINUTES = BoardSettings(reset="*/10 * * * *", keep_periods=0)


def _catalog() -> Catalog:
    return Catalog(
        "global",
        {
            "global": BoardSettings(),
            "weekly": BoardSettings(reset="weekly", keep_periods=1),
            "daily": BoardSettings(reset="daily", timezone="Europe/Berlin", keep_periods=2),
            "tens": TEN_MINUTES,
        },
    )


def _standing(user: str, seq: int) -> Standing:
    return Standing(user_id=user, username=user.title(), score=10 * seq, seq=seq, updated_ms=seq)


class Process:
    """One server process's view: its own connection, clock, ranking and sweeper."""

    def __init__(self, client: aioredis.Redis, prefix: str, catalog: Catalog, clock: Clock) -> None:
        self.catalog = catalog
        self.clock = clock
        self.ranking = RedisRanking(client, Keys(prefix), clock=clock)
        self.sweeper = Sweeper(self.ranking, catalog.fallen, clock)

    def where(self, board: str, at_ms: int) -> BoardPeriod:
        """The board period current at `at_ms`."""
        found = self.catalog.get(board)
        return found.where(found.current(at_ms))

    async def award(self, board: str, at_ms: int, user: str, seq: int) -> BoardPeriod:
        """Place a user in the period current at `at_ms`, with that period's expiry, as an award does."""
        found = self.catalog.get(board)
        period = found.current(at_ms)
        await self.ranking.put(found.where(period), _standing(user, seq), expire_ms=found.expire_ms(period))
        return found.where(period)

    async def held(self, where: BoardPeriod) -> int:
        """How many of the period's rank and cards keys Redis holds."""
        return int(await self.ranking.client.exists(*self.ranking.keys.shelf(where.board, where.period)[:2]))


def _retired(rows: dict[str, str], retired_ms: int) -> tuple[list[tuple[str, str]], list[tuple[str, str, int]]]:
    """The catalog's rows as the database holds them after an operator retired "weekly" and "global"."""
    retired = ("weekly", "global")
    return [(b, text) for b, text in rows.items() if b not in retired], [(b, rows[b], retired_ms) for b in retired]


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = connect(REDIS_URL, pool_size=4)
    yield client
    await client.aclose()


@pytest.fixture
def make_process(redis_client: aioredis.Redis, redis_prefix: str) -> Callable[[Clock], Process]:
    """A maker of processes sharing one catalog's boards and this test's prefix, each on its clock."""
    return lambda clock: Process(redis_client, redis_prefix, _catalog(), clock)


@pytest.mark.parametrize("until", [WEDNESDAY_MS, NEXT_MONDAY_MS, NEXT_MONDAY_MS + 1, NEXT_MONDAY_MS + 3 * WEEK_MS])
@pytest.mark.parametrize("window_ms", [1, 10 * MINUTE_MS, EXPIRY_MARGIN_MS, 3 * 86_400_000])
def test_fallen_are_the_periods_whose_readable_end_is_in_the_window(until: int, window_ms: int) -> None:
    catalog = _catalog()
    since = until - window_ms
    expected = set()
    for board in catalog.boards.values():
        # Every period from well before the window to the one current at its end, by brute force.
        period = board.current(since - WEEK_MS * (board.settings.keep_periods + 2))
        while period.starts_ms is not None and period.starts_ms <= until:
            ends = board.expire_ms(period)
            if ends is not None and since < ends <= until:
                expected.add(board.where(period))
            following = board.schedule.after(period)
            assert following is not None
            period = following
    fallen = catalog.fallen(since, until)
    assert len(fallen) == len(set(fallen)) and set(fallen) == expected
    for where in fallen:  # none of them readable at the window's end
        with pytest.raises(PeriodNotFound):
            catalog.get(where.board).period(where.period, until)


async def test_a_period_no_longer_readable_is_unlinked_and_the_readable_ones_stay(
    make_process: Callable[[Clock], Process],
) -> None:
    clock = Clock(WEDNESDAY_MS - WEEK_MS)
    process = make_process(clock)
    w48 = await process.award("weekly", clock.now_ms, "a", 1)
    w49 = await process.award("weekly", WEDNESDAY_MS, "b", 2)
    w50 = await process.award("weekly", NEXT_MONDAY_MS, "c", 3)
    everything = await process.award("global", WEDNESDAY_MS, "d", 4)
    await process.award("weekly", clock.now_ms, "e", 5)
    await process.ranking.take_off(w48, [("e", 5)])  # an operator's removal: W48 has its marks too
    removed = process.ranking.keys.shelf(w48.board, w48.period).removed
    # W48 stops being readable when W50 starts (keep_periods 1); its keys stay for UNLINK_AFTER_MS.
    clock.now_ms = NEXT_MONDAY_MS + UNLINK_AFTER_MS - 1
    with pytest.raises(PeriodNotFound):
        process.catalog.get("weekly").period(w48.period, clock.now_ms)
    assert await process.sweeper.sweep() == 0
    assert await process.held(w48) == 2 and await process.ranking.client.exists(removed)
    clock.now_ms += 1
    assert await process.sweeper.sweep() == 3  # W48's sorted set, hash and removal marks
    assert await process.held(w48) == 0 and not await process.ranking.client.exists(removed)
    for kept in (w49, w50, everything):
        assert await process.held(kept) == 2
    assert [s.user_id for _, s in await process.ranking.top(w49, 10)] == ["b"]
    assert [s.user_id for _, s in await process.ranking.top(w50, 10)] == ["c"]
    # Until its end passes, a period stays; then it goes the same way.
    clock.now_ms = NEXT_MONDAY_MS + WEEK_MS + UNLINK_AFTER_MS - 1
    assert await process.sweeper.sweep() == 0
    clock.now_ms += 1
    assert await process.sweeper.sweep() == 2
    assert await process.held(w49) == 0 and await process.held(w50) == 2 and await process.held(everything) == 2


async def test_a_retired_boards_readable_periods_are_unlinked_after_its_retirement(
    make_process: Callable[[Clock], Process],
) -> None:
    clock = Clock(WEDNESDAY_MS)
    process = make_process(clock)
    previous = await process.award("weekly", WEDNESDAY_MS - WEEK_MS, "a", 1)  # W48, kept (keep_periods 1)
    current = await process.award("weekly", WEDNESDAY_MS, "b", 2)
    everything = await process.award("global", WEDNESDAY_MS, "c", 3)
    rows = {board_id: settings_text(board.settings) for board_id, board in process.catalog.boards.items()}
    retired_ms = WEDNESDAY_MS + MINUTE_MS
    process.catalog.load(*_retired(rows, retired_ms))
    clock.now_ms = retired_ms + UNLINK_AFTER_MS - 1
    assert await process.sweeper.sweep() == 0
    clock.now_ms += 1
    assert await process.sweeper.sweep() == 6  # each period's sorted set and hash
    for where in (previous, current, everything):
        assert await process.held(where) == 0
    # A write in flight on a process that had not read the catalog yet is swept too, within the margin.
    await process.ranking.put(everything, _standing("d", 4), expire_ms=None)
    clock.now_ms = retired_ms + UNLINK_AFTER_MS + EXPIRY_MARGIN_MS - 1
    assert await process.sweeper.sweep() == 2 and await process.held(everything) == 0
    await process.ranking.put(everything, _standing("e", 5), expire_ms=None)
    clock.now_ms += 1  # past the margin: the retirement is no longer swept
    assert await process.sweeper.sweep() == 0 and await process.held(everything) == 2


async def test_a_process_started_long_after_a_retirement_lets_its_keys_go(
    make_process: Callable[[Clock], Process],
) -> None:
    # Every process was down for hours after an operator retired "weekly" and "global" (never
    # reset: its keys have no expiry to fall back on). The first sweep of a process started then
    # lets them go, however long ago; its later sweeps ask only within the margin.
    clock = Clock(WEDNESDAY_MS)
    before = make_process(clock)
    current = await before.award("weekly", WEDNESDAY_MS, "b", 2)
    everything = await before.award("global", WEDNESDAY_MS, "c", 3)
    kept = await before.award("daily", WEDNESDAY_MS, "d", 4)
    retired_ms = WEDNESDAY_MS + MINUTE_MS
    clock.now_ms = retired_ms + EXPIRY_MARGIN_MS + 3 * 3_600_000
    started = make_process(clock)
    rows = {board_id: settings_text(board.settings) for board_id, board in started.catalog.boards.items()}
    started.catalog.load(*_retired(rows, retired_ms))
    window = (clock.now_ms - UNLINK_AFTER_MS - EXPIRY_MARGIN_MS, clock.now_ms - UNLINK_AFTER_MS)
    assert not set(started.catalog.fallen(*window)) & {current, everything}  # outside the window
    assert await started.held(everything) == 2 and await started.held(current) == 2
    assert await started.sweeper.sweep() == 4
    assert await started.held(everything) == 0 and await started.held(current) == 0
    assert await started.held(kept) == 2  # a board in use keeps its readable period
    await started.ranking.put(everything, _standing("e", 5), expire_ms=None)
    assert await started.sweeper.sweep() == 0 and await started.held(everything) == 2
    again = make_process(clock)  # another process's first sweep asks again: harmless, and thorough
    again.catalog.load(*_retired(rows, retired_ms))
    assert await again.sweeper.sweep() == 2 and await again.held(everything) == 0


async def test_a_second_process_sweeping_is_harmless_and_a_clock_behind_keeps_reading(
    make_process: Callable[[Clock], Process],
) -> None:
    # The 10-minute board keeps no finished period: its period stops being readable at its end.
    end = int(datetime(2026, 12, 2, 12, 10, tzinfo=UTC).timestamp() * 1000)
    ahead, behind = Clock(end + UNLINK_AFTER_MS - 1), Clock(end - 1)
    first, second = make_process(ahead), make_process(behind)
    ending = await second.award("tens", behind.now_ms, "a", 1)
    for seq in range(2, 6):  # the process behind still awards in the period that ends for the other
        assert await second.award("tens", behind.now_ms, f"u{seq}", seq) == ending
        assert await first.sweeper.sweep() == 0 and await second.sweeper.sweep() == 0
    assert await second.ranking.size(ending) == 5
    ahead.now_ms += 1
    behind.now_ms += 1  # both past the end now, the one behind by less than UNLINK_AFTER_MS
    assert await second.sweeper.sweep() == 0  # not yet by its own clock
    assert await first.sweeper.sweep() == 2
    assert await first.sweeper.sweep() == 0  # again: nothing left, nothing happens
    behind.now_ms = end + UNLINK_AFTER_MS
    assert await second.sweeper.sweep() == 0  # the other process did it already
    assert await first.held(ending) == 0
    following = await second.award("tens", behind.now_ms, "b", 9)
    assert following != ending and await first.held(following) == 2
    assert await first.sweeper.sweep() == 0 and await first.held(following) == 2


async def test_a_late_write_and_a_process_started_after_rollovers_are_swept(
    make_process: Callable[[Clock], Process],
) -> None:
    start = int(datetime(2026, 12, 2, 12, 0, tzinfo=UTC).timestamp() * 1000)
    clock = Clock(start)
    process = make_process(clock)
    periods = [await process.award("tens", start + i * 10 * MINUTE_MS, f"u{i}", i + 1) for i in range(9)]
    # No process swept for 80 minutes: the periods that ended within the margin are unlinked at the
    # first sweep, those whose backstop already fired (by this clock) are not asked for.
    clock.now_ms = start + 80 * MINUTE_MS + UNLINK_AFTER_MS + 1
    swept = clock.now_ms - UNLINK_AFTER_MS - EXPIRY_MARGIN_MS
    ended = periods[:8]  # 12:00 .. 13:10; 13:20 is current
    assert set(process.catalog.fallen(swept, clock.now_ms - UNLINK_AFTER_MS)) == set(ended[-6:])
    assert await process.sweeper.sweep() == 2 * 6
    for where in ended[-6:]:
        assert await process.held(where) == 0
    assert await process.held(periods[-1]) == 2  # the current period
    # A write that started before its period's end and lands after the sweep comes back with the
    # backstop set, and the next sweep takes it again.
    late = ended[-1]
    await process.ranking.put(late, _standing("late", 99), expire_ms=start + 80 * MINUTE_MS)
    assert await process.held(late) == 2
    assert await process.sweeper.sweep() == 2 and await process.held(late) == 0


async def test_the_backstop_is_the_readable_end_plus_the_margin(make_process: Callable[[Clock], Process]) -> None:
    clock = Clock()  # Wednesday of W49, which weekly keeps readable until W51 starts
    process = make_process(clock)
    w49 = await process.award("weekly", clock.now_ms, "a", 1)
    readable_for = NEXT_MONDAY_MS + WEEK_MS - clock.now_ms
    await process.ranking.load(w49, [_standing("b", 2)], NEXT_MONDAY_MS + WEEK_MS)  # a fill sets it the same way
    for key in process.ranking.keys.shelf(w49.board, w49.period)[:2]:  # rank and cards
        ttl = await process.ranking.client.pttl(key)
        # PEXPIRE is relative: its time to live counts from this process's clock, not Redis's.
        assert readable_for + EXPIRY_MARGIN_MS - 5_000 < ttl <= readable_for + EXPIRY_MARGIN_MS
    assert EXPIRY_MARGIN_MS > UNLINK_AFTER_MS + 60_000  # the sweep comes long before the backstop
    everything = await process.award("global", clock.now_ms, "c", 3)
    for key in process.ranking.keys.shelf(everything.board, everything.period)[:2]:
        assert await process.ranking.client.pttl(key) == -1  # a board that never resets: no expiry


async def test_a_big_period_goes_by_unlink_not_by_del_nor_by_expiry(private_redis: RedisServer) -> None:
    client = connect(private_redis.url, pool_size=2)
    try:
        clock = Clock(WEDNESDAY_MS - WEEK_MS)
        process = Process(client, "sweep", _catalog(), clock)
        weekly = process.catalog.get("weekly")
        w48, w49 = process.where("weekly", clock.now_ms), process.where("weekly", WEDNESDAY_MS)
        users = [_standing(f"u{i}", i + 1) for i in range(5_000)]
        await process.ranking.load(w48, users, weekly.expire_ms(weekly.current(clock.now_ms)))
        await process.ranking.load(w49, users, weekly.expire_ms(weekly.current(WEDNESDAY_MS)))
        await client.config_resetstat()
        clock.now_ms = NEXT_MONDAY_MS + UNLINK_AFTER_MS
        assert await process.sweeper.sweep() == 2
        await process.ranking.drop(w49)  # an operator's wipe
        assert await process.held(w48) == 0 and await process.held(w49) == 0
        stats = await client.info("commandstats")
        assert stats["cmdstat_unlink"]["calls"] == 2 and "cmdstat_del" not in stats
        assert (await client.info("stats"))["expired_keys"] == 0
    finally:
        await client.aclose()
