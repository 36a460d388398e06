"""Leaderboard periods: boundaries, ids, DST days, cron fire times and what stays readable.

Expected instants are computed here with plain datetime arithmetic in the zone, not with the
schedule's own code."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.boards.periods import ALL, Period, Schedule, check_reset, check_timezone

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def local_ms(
    zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, *, fold: int = 0
) -> int:
    """A whole-second local time in `zone`, as ms since the epoch."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=ZoneInfo(zone), fold=fold).timestamp()) * 1000


def local_of(zone: str, ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(zone))


# Boundaries: 1 ms either side


@pytest.mark.parametrize(
    ("reset", "zone", "boundary", "before_id", "after_id"),
    [
        ("daily", "UTC", (2026, 5, 10), "2026-05-09", "2026-05-10"),
        ("daily", "Europe/Berlin", (2026, 5, 10), "2026-05-09", "2026-05-10"),
        ("daily", "Asia/Kolkata", (2026, 1, 1), "2025-12-31", "2026-01-01"),
        ("weekly", "Europe/Berlin", (2026, 11, 30), "2026-W48", "2026-W49"),
        ("weekly", "America/New_York", (2027, 1, 4), "2026-W53", "2027-W01"),
        ("monthly", "Europe/Berlin", (2027, 1, 1), "2026-12", "2027-01"),
        ("monthly", "Australia/Sydney", (2026, 3, 1), "2026-02", "2026-03"),
        ("30 6 * * 1-5", "America/New_York", (2026, 3, 9, 6, 30), "2026-03-06T06:30", "2026-03-09T06:30"),
        ("0 */6 * * *", "Europe/Berlin", (2026, 5, 10, 18), "2026-05-10T12:00", "2026-05-10T18:00"),
    ],
)
def test_one_ms_either_side_of_a_boundary(
    reset: str, zone: str, boundary: tuple[int, ...], before_id: str, after_id: str
) -> None:
    schedule = Schedule(reset, zone)
    at = local_ms(zone, *boundary)
    early, late = schedule.at(at - 1), schedule.at(at + 1)
    assert (early.id, late.id) == (before_id, after_id)
    assert early.ends_ms == at == late.starts_ms
    assert schedule.at(at) == late  # a period includes its start and excludes its end
    assert schedule.after(early) == late
    assert schedule.before(late) == early


# Calendar resets against datetime, sampled over whole years


@pytest.mark.parametrize(
    "zone",
    [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "America/Santiago",  # DST starts at midnight: a day without 00:00
        "America/Havana",  # DST starts at midnight and ends at 01:00 back to 00:00: a midnight twice
        "Australia/Lord_Howe",  # half-hour DST
        "Asia/Kathmandu",  # +05:45
    ],
)
def test_calendar_ids_are_the_local_date_of_every_instant(zone: str) -> None:
    tz = ZoneInfo(zone)
    daily, weekly, monthly = Schedule("daily", zone), Schedule("weekly", zone), Schedule("monthly", zone)
    start = local_ms(zone, 2026, 1, 1)
    for ms in range(start, start + 367 * DAY_MS, 37 * 60_000 + 1):
        day = datetime.fromtimestamp(ms / 1000, tz).date()
        iso = day.isocalendar()
        for schedule, expected in (
            (daily, day.isoformat()),
            (weekly, f"{iso.year:04d}-W{iso.week:02d}"),
            (monthly, f"{day.year:04d}-{day.month:02d}"),
        ):
            period = schedule.at(ms)
            assert period.id == expected
            assert period.starts_ms is not None and period.ends_ms is not None
            assert period.starts_ms <= ms < period.ends_ms


def test_calendar_starts_are_local_midnights_in_berlin() -> None:
    daily, weekly, monthly = (
        Schedule("daily", "Europe/Berlin"),
        Schedule("weekly", "Europe/Berlin"),
        Schedule("monthly", "Europe/Berlin"),
    )
    day = date(2025, 12, 1)
    while day < date(2027, 2, 1):
        noon = local_ms("Europe/Berlin", day.year, day.month, day.day, 12)
        assert daily.at(noon).starts_ms == local_ms("Europe/Berlin", day.year, day.month, day.day)
        next_day = day + timedelta(days=1)
        assert daily.at(noon).ends_ms == local_ms("Europe/Berlin", next_day.year, next_day.month, next_day.day)
        monday = day - timedelta(days=day.weekday())
        assert weekly.at(noon).starts_ms == local_ms("Europe/Berlin", monday.year, monday.month, monday.day)
        assert monthly.at(noon).starts_ms == local_ms("Europe/Berlin", day.year, day.month, 1)
        day = next_day


def test_berlin_spring_day_is_23_hours_and_autumn_day_25() -> None:
    daily = Schedule("daily", "Europe/Berlin")
    spring = daily.at(local_ms("Europe/Berlin", 2026, 3, 29, 12))
    autumn = daily.at(local_ms("Europe/Berlin", 2026, 10, 25, 12))
    assert spring.id == "2026-03-29" and autumn.id == "2026-10-25"
    assert spring.ends_ms is not None and spring.starts_ms is not None
    assert autumn.ends_ms is not None and autumn.starts_ms is not None
    assert spring.ends_ms - spring.starts_ms == 23 * HOUR_MS
    assert autumn.ends_ms - autumn.starts_ms == 25 * HOUR_MS
    assert spring.starts_ms == int(datetime(2026, 3, 28, 23, tzinfo=UTC).timestamp()) * 1000
    assert autumn.ends_ms == int(datetime(2026, 10, 25, 23, tzinfo=UTC).timestamp()) * 1000
    # The weeks and months around them are shorter and longer by the same hour.
    weekly, monthly = Schedule("weekly", "Europe/Berlin"), Schedule("monthly", "Europe/Berlin")
    week = weekly.at(spring.starts_ms)
    march = monthly.at(spring.starts_ms)
    assert week.id == "2026-W13" and week.ends_ms is not None and week.starts_ms is not None
    assert week.ends_ms - week.starts_ms == 7 * DAY_MS - HOUR_MS
    assert march.id == "2026-03" and march.ends_ms is not None and march.starts_ms is not None
    assert march.ends_ms - march.starts_ms == 31 * DAY_MS - HOUR_MS


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 12, 28), "2026-W53"),
        (date(2026, 12, 31), "2026-W53"),
        (date(2027, 1, 1), "2026-W53"),  # a Friday: still the ISO week that started in 2026
        (date(2027, 1, 3), "2026-W53"),
        (date(2027, 1, 4), "2027-W01"),
        (date(2024, 12, 30), "2025-W01"),  # a Monday in December that opens ISO year 2025
        (date(2021, 1, 3), "2020-W53"),
        (date(2026, 11, 30), "2026-W49"),
    ],
)
def test_weekly_ids_use_the_iso_year(day: date, expected: str) -> None:
    iso = day.isocalendar()
    assert expected == f"{iso.year}-W{iso.week:02d}"  # the expectation itself, by the standard library
    weekly = Schedule("weekly", "Europe/Berlin")
    period = weekly.at(local_ms("Europe/Berlin", day.year, day.month, day.day, 12))
    monday = date.fromisocalendar(iso.year, iso.week, 1)
    assert period == Period(
        id=expected,
        starts_ms=local_ms("Europe/Berlin", monday.year, monday.month, monday.day),
        ends_ms=local_ms("Europe/Berlin", *(monday + timedelta(days=7)).timetuple()[:3]),
    )
    assert weekly.parse(expected) == period


def test_monthly_across_the_year_and_february_in_a_leap_year() -> None:
    monthly = Schedule("monthly", "Europe/Berlin")
    new_year = local_ms("Europe/Berlin", 2027, 1, 1)
    december, january = monthly.at(new_year - 1), monthly.at(new_year)
    assert december == Period(id="2026-12", starts_ms=local_ms("Europe/Berlin", 2026, 12, 1), ends_ms=new_year)
    assert january == Period(id="2027-01", starts_ms=new_year, ends_ms=local_ms("Europe/Berlin", 2027, 2, 1))
    leap = monthly.at(local_ms("Europe/Berlin", 2028, 2, 29, 23, 59, 59) + 999)
    common = monthly.at(local_ms("Europe/Berlin", 2027, 2, 15))
    assert leap.id == "2028-02" and leap.starts_ms is not None and leap.ends_ms is not None
    assert leap.ends_ms - leap.starts_ms == 29 * DAY_MS
    assert common.id == "2027-02" and common.starts_ms is not None and common.ends_ms is not None
    assert common.ends_ms - common.starts_ms == 28 * DAY_MS
    assert monthly.at(leap.ends_ms).id == "2028-03"


# Midnights that do not exist, or exist twice


def test_a_day_without_midnight_starts_at_the_jump() -> None:
    # America/Santiago, 2026-09-06: 23:59:59 -04 on the 5th is followed by 01:00 -03 on the 6th.
    daily = Schedule("daily", "America/Santiago")
    jump = int(datetime(2026, 9, 6, 4, tzinfo=UTC).timestamp()) * 1000
    assert local_of("America/Santiago", jump).replace(tzinfo=None) == datetime(2026, 9, 6, 1)
    assert local_of("America/Santiago", jump - 1000).replace(tzinfo=None) == datetime(2026, 9, 5, 23, 59, 59)
    saturday, sunday = daily.at(jump - 1), daily.at(jump)
    assert saturday.id == "2026-09-05" and saturday.ends_ms == jump
    assert sunday == Period(id="2026-09-06", starts_ms=jump, ends_ms=jump + 23 * HOUR_MS)
    assert daily.parse("2026-09-06") == sunday
    assert daily.before(sunday) == saturday


@pytest.mark.parametrize(
    ("zone", "day", "jump_utc"),
    [
        ("America/Havana", date(2026, 3, 8), datetime(2026, 3, 8, 5, tzinfo=UTC)),
        ("Asia/Beirut", date(2020, 3, 29), datetime(2020, 3, 28, 22, tzinfo=UTC)),
        ("America/Sao_Paulo", date(2018, 11, 4), datetime(2018, 11, 4, 3, tzinfo=UTC)),
    ],
)
def test_other_days_without_midnight(zone: str, day: date, jump_utc: datetime) -> None:
    jump = int(jump_utc.timestamp()) * 1000
    assert local_of(zone, jump).replace(tzinfo=None) == datetime(day.year, day.month, day.day, 1)
    daily = Schedule("daily", zone)
    assert daily.at(jump - 1).id == (day - timedelta(days=1)).isoformat()
    assert daily.at(jump) == Period(id=day.isoformat(), starts_ms=jump, ends_ms=jump + 23 * HOUR_MS)


def test_a_midnight_twice_starts_the_day_at_the_first() -> None:
    # America/Havana, 2026-11-01: 00:59:59 -04 is followed by 00:00 -05.
    daily = Schedule("daily", "America/Havana")
    first = int(datetime(2026, 11, 1, 4, tzinfo=UTC).timestamp()) * 1000
    assert local_of("America/Havana", first).replace(tzinfo=None) == datetime(2026, 11, 1)
    sunday = daily.at(first + 90 * 60_000)  # 00:30 the second time
    assert sunday == Period(id="2026-11-01", starts_ms=first, ends_ms=first + 25 * HOUR_MS)


def test_a_gap_across_midnight_starts_the_day_at_its_end() -> None:
    # America/Toronto, 1919-03-31: 23:29:59 EST on the 30th is followed by 00:30 EDT on the 31st.
    daily = Schedule("daily", "America/Toronto")
    jump = int(datetime(1919, 3, 31, 4, 30, tzinfo=UTC).timestamp()) * 1000
    assert local_of("America/Toronto", jump).replace(tzinfo=None) == datetime(1919, 3, 31, 0, 30)
    assert daily.at(jump - 1).id == "1919-03-30"
    assert daily.at(jump) == Period(id="1919-03-31", starts_ms=jump, ends_ms=jump + 23 * HOUR_MS + 30 * 60_000)
    assert daily.parse("1919-03-31") == daily.at(jump)


def test_an_hour_repeated_across_midnight_belongs_to_the_new_day() -> None:
    # America/Moncton, 1993-10-31: 00:00:59 ADT is followed by 23:01 AST on the 30th. The first midnight
    # is the reset; the second half-hour of the 30th, after it, is in the day of the 31st.
    daily = Schedule("daily", "America/Moncton")
    midnight = int(datetime(1993, 10, 31, 3, tzinfo=UTC).timestamp()) * 1000
    again = midnight + 30 * 60_000  # 03:30 UTC
    assert local_of("America/Moncton", again).replace(tzinfo=None) == datetime(1993, 10, 30, 23, 30)
    sunday = Period(id="1993-10-31", starts_ms=midnight, ends_ms=midnight + 25 * HOUR_MS)
    assert daily.at(again) == sunday
    assert Schedule("daily", "America/Moncton").at(again) == sunday  # with nothing cached
    assert daily.at(midnight - 1) == Period(id="1993-10-30", starts_ms=midnight - DAY_MS, ends_ms=midnight)
    assert daily.parse("1993-10-31") == sunday


def test_a_skipped_day_is_no_period() -> None:
    # Pacific/Apia skipped 2011-12-30 when it moved across the date line.
    daily = Schedule("daily", "Pacific/Apia")
    thursday = daily.at(local_ms("Pacific/Apia", 2011, 12, 29, 12))
    saturday = daily.after(thursday)
    assert thursday.id == "2011-12-29" and saturday is not None and saturday.id == "2011-12-31"
    assert thursday.ends_ms == saturday.starts_ms
    assert daily.parse("2011-12-30") is None
    assert daily.before(saturday) == thursday


# Cron resets


def weekday_0630_start(ms: int) -> int:
    """The latest weekday 06:30 in New York at or before `ms`, by brute force over dates."""
    day = local_of("America/New_York", ms).date()
    while True:
        candidate = local_ms("America/New_York", day.year, day.month, day.day, 6, 30)
        if day.weekday() < 5 and candidate <= ms:
            return candidate
        day -= timedelta(days=1)


def test_cron_matches_brute_force_over_a_year() -> None:
    schedule = Schedule("30 6 * * 1-5", "America/New_York")
    start = local_ms("America/New_York", 2026, 1, 1)
    for ms in range(start, start + 366 * DAY_MS, 53 * 60_000 + 7):
        period = schedule.at(ms)
        assert period.starts_ms == weekday_0630_start(ms)
        assert period.ends_ms is not None and period.ends_ms > ms
        assert period.ends_ms == weekday_0630_start(period.ends_ms)
        assert period.id == local_of("America/New_York", period.starts_ms).strftime("%Y-%m-%dT%H:%M")


def test_cron_across_dst_changes_in_new_york() -> None:
    schedule = Schedule("30 6 * * 1-5", "America/New_York")
    # Spring: Friday 06:30 EST to Monday 06:30 EDT is an hour short of three days.
    friday = schedule.at(local_ms("America/New_York", 2026, 3, 7, 12))
    assert friday == Period(
        id="2026-03-06T06:30",
        starts_ms=int(datetime(2026, 3, 6, 11, 30, tzinfo=UTC).timestamp()) * 1000,
        ends_ms=int(datetime(2026, 3, 9, 10, 30, tzinfo=UTC).timestamp()) * 1000,
    )
    # Autumn: an hour longer.
    autumn = schedule.at(local_ms("America/New_York", 2026, 11, 1, 12))
    assert autumn.id == "2026-10-30T06:30" and autumn.ends_ms is not None and autumn.starts_ms is not None
    assert autumn.ends_ms - autumn.starts_ms == 3 * DAY_MS + HOUR_MS


def test_cron_at_a_time_in_a_dst_gap_fires_at_its_end() -> None:
    schedule = Schedule("30 2 * * *", "America/New_York")
    gap_end = int(datetime(2026, 3, 8, 7, tzinfo=UTC).timestamp()) * 1000  # 03:00 EDT
    assert schedule.at(gap_end - 1).id == "2026-03-07T02:30"
    assert schedule.at(gap_end).id == "2026-03-08T03:00"
    assert schedule.parse("2026-03-08T03:00") == schedule.at(gap_end)
    assert schedule.parse("2026-03-08T02:30") is None  # that local time never happened


def test_cron_in_a_repeated_hour_resets_once() -> None:
    schedule = Schedule("30 1 * * *", "America/New_York")
    first = int(datetime(2026, 11, 1, 5, 30, tzinfo=UTC).timestamp()) * 1000  # 01:30 EDT
    # 01:15 EST (the second 01:15) comes after the reset at 01:30 EDT; cronsim alone, reading the
    # naive 01:15, would put it in the day before.
    second_quarter_past = local_ms("America/New_York", 2026, 11, 1, 1, 15, fold=1)
    assert second_quarter_past > first
    period = schedule.at(second_quarter_past)
    assert period == Period(id="2026-11-01T01:30", starts_ms=first, ends_ms=first + 25 * HOUR_MS)
    assert schedule.at(first - 1).id == "2026-10-31T01:30"


def test_cron_every_hour_in_a_repeated_hour_keeps_ids_unique() -> None:
    schedule = Schedule("0 * * * *", "America/New_York")
    one_edt = int(datetime(2026, 11, 1, 5, tzinfo=UTC).timestamp()) * 1000
    period = schedule.at(one_edt + 90 * 60_000)  # 01:30 EST, the second time round
    assert period == Period(id="2026-11-01T01:00", starts_ms=one_edt, ends_ms=one_edt + 2 * HOUR_MS)
    assert schedule.parse("2026-11-01T01:00") == period
    ids = [p.id for p in walk(schedule, schedule.at(one_edt - 5 * HOUR_MS), 10, forward=True)]
    assert len(set(ids)) == len(ids) == 10


def test_cron_every_four_years_does_not_hang() -> None:
    schedule = Schedule("0 0 29 2 *", "UTC")
    period = schedule.at(local_ms("UTC", 2027, 6, 1))
    assert period == Period(
        id="2024-02-29T00:00", starts_ms=local_ms("UTC", 2024, 2, 29), ends_ms=local_ms("UTC", 2028, 2, 29)
    )
    assert schedule.parse("2028-02-29T00:00") == schedule.after(period)


@pytest.mark.parametrize(
    ("reset", "zone", "first"),
    [
        ("0 0 29 2 *", "Pacific/Apia", "0004-02-29T00:00"),
        ("monthly", "UTC", "0001-01"),
        ("monthly", "Asia/Tokyo", "0001-02"),
    ],
)
def test_the_kept_periods_end_at_the_calendars_first_year(reset: str, zone: str, first: str) -> None:
    """A four-yearly cron kept 1000 periods back reaches before year 1: the list stops at the first
    period the calendar holds rather than failing (it failed every read and sweep of every board)."""
    schedule = Schedule(reset, zone)
    now = local_ms(zone, 2026, 12, 5)
    kept = schedule.kept(now, 100_000)
    assert kept[-1].id == first and schedule.before(kept[-1]) is None
    assert len(kept) == len({p.id for p in kept}) and schedule.readable(kept[-2], now, 100_000)
    drop = schedule.drop_ms(kept[-1], 100_000)  # None when that is past the calendar's last year
    assert drop is None or drop > now


def test_the_periods_end_at_the_calendars_last_year() -> None:
    schedule = Schedule("daily", "UTC")
    last = schedule.at(local_ms("UTC", 9999, 12, 30, 12))  # the last day whose end the calendar holds
    assert last.id == "9999-12-30" and schedule.after(last) is None


# Walking, and ids that round-trip


def walk(schedule: Schedule, period: Period, count: int, *, forward: bool) -> list[Period]:
    periods = [period]
    step: Callable[[Period], Period | None] = schedule.after if forward else schedule.before
    for _ in range(count - 1):
        following = step(periods[-1])
        assert following is not None
        periods.append(following)
    return periods


@pytest.mark.parametrize(
    ("reset", "zone", "count"),
    [
        ("daily", "Europe/Berlin", 800),
        ("daily", "America/Santiago", 800),
        ("weekly", "Australia/Lord_Howe", 300),
        ("monthly", "America/Havana", 300),
        ("30 6 * * 1-5", "America/New_York", 600),
        ("*/20 0-3 * * *", "America/Santiago", 600),
        ("0,30 * * * *", "America/New_York", 400),
        ("15 9 1 * *", "Asia/Tokyo", 200),
    ],
)
def test_walking_forward_and_back_round_trips(reset: str, zone: str, count: int) -> None:
    schedule = Schedule(reset, zone)
    # Start just before a year's DST changes, so that the walk crosses some of them.
    periods = walk(schedule, schedule.at(local_ms(zone, 2026, 3, 1)), count, forward=True)
    for earlier, later in itertools.pairwise(periods):
        assert earlier.ends_ms == later.starts_ms
        assert earlier.id < later.id  # ids sort as time does
        assert schedule.before(later) == earlier
    assert walk(schedule, periods[-1], count, forward=False) == periods[::-1]
    fresh = Schedule(reset, zone)  # nothing cached
    for period in periods:
        assert fresh.parse(period.id) == period
        assert period.starts_ms is not None and period.ends_ms is not None
        assert fresh.at(period.starts_ms) == period
        assert fresh.at(period.ends_ms - 1) == period


NEAR_MISSES = {
    "daily": [
        "2026-02-30",
        "2025-02-29",
        "2026-13-01",
        "2026-00-10",
        "2026-01-00",
        "2026-1-01",
        "26-01-01",
        "0000-01-01",
        "2026/01/01",
        "2026-01-01T00:00",
        "2026-W01",
        "2026-01",
        "+026-01-01",
        "10000-01-01",
        "9999-12-31",  # well formed, but its end is past the last date datetime has
    ],
    "weekly": ["2026-W54", "2025-W53", "2026-W00", "2026-W1", "2026-w01", "2026W01", "2026-W01-1", "2026-01-05"],
    "monthly": ["2026-13", "2026-00", "2026-1", "2026-01-01", "202601", "0000-01"],
    "30 6 * * 1-5": [
        "2026-03-09T06:31",  # not a fire time
        "2026-03-07T06:30",  # a Saturday
        "2026-03-09T6:30",
        "2026-03-09 06:30",
        "2026-03-09T06:30:00",
        "2026-03-09T06:30Z",
        "2026-03-09T24:00",
        "2026-03-09T06:60",
        "2026-03-09",
    ],
}
HOSTILE = [
    "",
    " 2026-01-01",
    "2026-01-01\n",
    "2026-01\n",
    "2026-W01\n",
    "2026-03-09T06:30\n",
    "\uff12\uff10\uff12\uff16-01-01",  # fullwidth digits
    "\u0662\u0660\u0662\u0666-01-01",  # Arabic-Indic digits
    "\uff12\uff10\uff12\uff16-03-09T06:30",
    "2026-01-01\x00",
    "\x00",
    "9" * 10_000,
    "all",
    "\udcff",
]


@pytest.mark.parametrize(("reset", "period_id"), [(r, i) for r, ids in NEAR_MISSES.items() for i in ids + HOSTILE])
def test_parse_rejects_near_misses_and_hostile_ids(reset: str, period_id: str) -> None:
    assert Schedule(reset, "America/New_York").parse(period_id) is None


def test_parse_accepts_a_well_formed_id() -> None:
    daily = Schedule("daily", "UTC")
    assert daily.parse("2026-01-01") == Period(
        id="2026-01-01", starts_ms=local_ms("UTC", 2026, 1, 1), ends_ms=local_ms("UTC", 2026, 1, 2)
    )


# Never


def test_never_has_one_period_all_the_time() -> None:
    schedule = Schedule("never", "Europe/Berlin")
    expected = Period(id="all", starts_ms=None, ends_ms=None)
    assert expected == ALL
    for ms in (-(10**15), 0, local_ms("UTC", 2026, 5, 10), 10**15):
        assert schedule.at(ms) == expected
    assert schedule.before(expected) is None and schedule.after(expected) is None
    assert schedule.parse("all") == expected
    for bad in ("ALL", "all ", "", "2026-01-01"):
        assert schedule.parse(bad) is None
    assert schedule.kept(0, 3) == [expected]
    assert schedule.readable(expected, 0, 0)
    assert schedule.drop_ms(expected, 3) is None


# Kept, readable, dropped


@pytest.mark.parametrize("keep", [0, 1, 3])
def test_kept_readable_and_drop_for_daily(keep: int) -> None:
    schedule = Schedule("daily", "UTC")
    now = local_ms("UTC", 2026, 5, 10, 12)
    kept = schedule.kept(now, keep)
    assert [p.id for p in kept] == [f"2026-05-{10 - back:02d}" for back in range(keep + 1)]
    oldest = kept[-1]
    too_old = schedule.before(oldest)
    future = schedule.after(kept[0])
    assert too_old is not None and future is not None
    assert all(schedule.readable(p, now, keep) for p in kept)
    assert not schedule.readable(too_old, now, keep)
    assert not schedule.readable(future, now, keep)
    # The oldest kept goes when the day keep + 1 after it begins: at the end of today.
    drop = schedule.drop_ms(oldest, keep)
    assert drop == local_ms("UTC", 2026, 5, 11)
    assert schedule.readable(oldest, drop - 1, keep)
    assert not schedule.readable(oldest, drop, keep)
    # A day is readable from its start until its drop, whatever happened in it.
    today = kept[0]
    assert today.starts_ms is not None
    assert not schedule.readable(today, today.starts_ms - 1, keep)
    assert schedule.drop_ms(today, keep) == local_ms("UTC", 2026, 5, 11 + keep)


def test_kept_for_weekly_and_cron() -> None:
    weekly = Schedule("weekly", "Europe/Berlin")
    now = local_ms("Europe/Berlin", 2027, 1, 6)
    assert [p.id for p in weekly.kept(now, 3)] == ["2027-W01", "2026-W53", "2026-W52", "2026-W51"]
    cron = Schedule("30 6 * * 1-5", "America/New_York")
    monday = local_ms("America/New_York", 2026, 3, 9, 7)
    assert [p.id for p in cron.kept(monday, 1)] == ["2026-03-09T06:30", "2026-03-06T06:30"]
    friday = cron.kept(monday, 1)[1]
    assert cron.drop_ms(friday, 1) == local_ms("America/New_York", 2026, 3, 10, 6, 30)


def test_keep_below_zero_is_refused() -> None:
    schedule = Schedule("daily", "UTC")
    with pytest.raises(ValueError, match="keep -1"):
        schedule.kept(0, -1)
    with pytest.raises(ValueError, match="keep -1"):
        schedule.drop_ms(schedule.at(0), -1)


def test_at_returns_the_cached_period_for_nearby_instants() -> None:
    schedule = Schedule("daily", "Europe/Berlin")
    noon = local_ms("Europe/Berlin", 2026, 5, 10, 12)
    period = schedule.at(noon)
    assert all(schedule.at(noon + step) is period for step in range(0, 3_600_000, 60_000))
    assert schedule.at(noon + DAY_MS).id == "2026-05-11"
    assert schedule.at(noon) == period


# Validation


@pytest.mark.parametrize(
    "name",
    [
        "",
        "localtime",
        "Europe",
        "Factory",
        "europe/berlin",
        "Europe/Berlin ",
        " Europe/Berlin",
        "Europe/Berlin\n",
        "Europe/Berlin\x00",
        "../etc/passwd",
        "Europe/../Europe/Berlin",
        "/etc/localtime",
        "/usr/share/zoneinfo/UTC",
        "posix/Europe/Berlin",
        "right/UTC",
        "\u00c9urope/Berlin",
        "\udcff",
        "a" * 5000,
        "Mars/Olympus_Mons",
    ],
)
def test_unknown_time_zones_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"^timezone ") as refused:
        check_timezone(name)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 200
    with pytest.raises(ValueError, match=r"^timezone "):
        Schedule("daily", name)


@pytest.mark.parametrize("name", ["UTC", "Etc/UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Asia/Calcutta"])
def test_known_time_zones_are_accepted(name: str) -> None:
    check_timezone(name)


@pytest.mark.parametrize(
    ("reset", "why"),
    [
        ("0 0 30 2 *", "Bad day-of-month"),  # never fires
        ("0 0 31 4 *", "Bad day-of-month"),
        ("0 0 * 2 MON#5", "every 5 years"),  # only when February has five Mondays
        ("0 0 31 2 1#5", "every 5 years"),
        ("* * * * * *", "6 fields"),
        ("* * * *", "4 fields"),
        ("", "0 fields"),
        ("hourly", "1 fields"),
        ("Daily", "1 fields"),
        ("NEVER", "1 fields"),
        ("60 * * * *", "Bad minute"),
        ("* 24 * * *", "Bad hour"),
        ("0 0 * * 8", "Bad day-of-week"),
        ("0 0 * 13 *", "Bad month"),
        ("*/0 * * * *", "Bad minute"),
        ("5-1 * * * *", "Bad minute"),
        ("\uff10 0 * * *", "not ASCII"),
        ("0 0 * * fr\u0131", "not ASCII"),
        ("0 0 * * *\x00", "Bad day-of-week"),
    ],
)
def test_invalid_resets_are_refused(reset: str, why: str) -> None:
    with pytest.raises(ValueError, match=r"^reset ") as refused:
        check_reset(reset)
    message = str(refused.value)
    assert why in message and "\n" not in message
    with pytest.raises(ValueError, match=r"^reset "):
        Schedule(reset, "UTC")


@pytest.mark.parametrize(
    "reset", ["never", "daily", "weekly", "monthly", "0 0 * * *", "30 6 * * MON-FRI", "0 0 L * *", "0 0 29 2 *"]
)
def test_valid_resets_are_accepted(reset: str) -> None:
    check_reset(reset)
