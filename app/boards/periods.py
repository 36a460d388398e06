"""Leaderboard periods: the spans between a board's resets, named by their local start.

A board resets "never", "daily", "weekly" (ISO weeks, Monday), "monthly" (the 1st) at local
midnight in its IANA time zone, or at the fire times of a 5-field cron expression read in that
zone. A period is [starts_ms, ends_ms) in ms since the epoch; every instant is in exactly one.

Choices where local time is not simple:
- A day whose midnight does not exist (a DST jump at midnight, e.g. America/Santiago, America/Havana)
  starts at its first instant, the moment of the jump (local 01:00); a day skipped entirely (Pacific/Apia,
  2011-12-30) is no period. Of a midnight that occurs twice, the first is the reset: an hour repeated
  across midnight (America/Moncton, 1993-10-31) is in the new day, though its local date is the old one.
- A cron must fire at least once in every 5 consecutive years (1970-2099), so no search runs far.
- Cron fire times follow cronsim, which mimics Debian cron: a job at a fixed local time that falls in a
  DST gap fires at the end of the gap, and once, not twice, in a repeated hour. A cron with a wildcard
  minute or hour fires at both occurrences of a repeated local time; the second is not a reset here,
  because a period's id is its local start, which must name one period.
"""

from __future__ import annotations

import functools
import importlib.resources
import itertools
import re
from calendar import isleap
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

import msgspec
from cronsim import CronSim, CronSimError

NEVER = "never"
CALENDAR_RESETS = ("daily", "weekly", "monthly")

# A reset must come at least this often, so that no search for a boundary runs far; the rule is
# checked per calendar year over the years the service can meet, which lets a cron for February 29th
# (four years apart) through and stops one for the fifth Monday of February (about every 28 years).
_MAX_YEARS_WITHOUT_RESET = 4
_RULE_YEARS = range(1970, 2100)

# Fire times walked to correct a candidate start from cronsim's reverse search; the candidate is at most
# a repeated hour early, which is 120 fires for a cron every minute.
_MAX_CRON_STEPS = 10_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_DAY_MS = 86_400_000

_DAY_ID = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_WEEK_ID = re.compile(r"([0-9]{4})-W([0-9]{2})")
_MONTH_ID = re.compile(r"([0-9]{4})-([0-9]{2})")
_CRON_ID = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})")

_Key = TypeVar("_Key", int, str)

# Far outside any instant in ms, so that the cached span of "never" holds every instant.
_WHOLE_TIME = (-(10**30), 10**30)


class Period(msgspec.Struct, frozen=True, kw_only=True):
    """A span between two resets; `starts_ms` and `ends_ms` are None for a board that never resets."""

    id: str
    starts_ms: int | None
    ends_ms: int | None


ALL = Period(id="all", starts_ms=None, ends_ms=None)


def _shown(value: str) -> str:
    # Names come from clients and config: one line, and not all of a huge one.
    return repr(value) if len(value) <= 60 else repr(value[:60]) + "..."


@functools.cache
def _iana_names() -> frozenset[str]:
    # tzdata's list, not ZoneInfo's search path: that also finds "localtime", "posix/...", "right/..."
    # and whatever files the host has. "Factory" is tzdata's placeholder for an unset zone.
    text = importlib.resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip()) - {"Factory"}


def _load_zone(name: str) -> ZoneInfo:
    if name not in _iana_names():
        raise ValueError(f"timezone {_shown(name)}: not an IANA time zone name (such as 'Europe/Berlin')")
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, KeyError) as error:  # KeyError: ZoneInfoNotFoundError
        raise ValueError(f"timezone {_shown(name)}: cannot be loaded ({type(error).__name__})") from error


def check_timezone(name: str) -> None:
    """Raise ValueError unless `name` is a known IANA time zone."""
    _load_zone(name)


@functools.lru_cache(maxsize=256)
def _cron_problem(expr: str) -> str | None:
    if not expr.isascii():
        # cronsim upper-cases before it reads names: "fr\u0131" (a dotless i) would be read as FRI.
        return "not ASCII"
    fields = len(expr.split())
    if fields != 5:
        return f"{fields} fields, not 5"
    try:
        CronSim(expr, datetime(2000, 1, 1))
    except CronSimError as error:
        return str(error)
    # Which days fire depends only on the calendar of the year, and a year's calendar only on whether
    # it is a leap year and the weekday of January 1st: 14 kinds, all in any 28 years.
    fires_in_kind: dict[tuple[bool, int], bool] = {}
    for year in range(2000, 2028):
        first = next(CronSim(expr, datetime(year - 1, 12, 31, 23, 59, 59)), None)
        fires_in_kind[(isleap(year), date(year, 1, 1).weekday())] = first is not None and first.year == year
    run = 0
    for year in _RULE_YEARS:
        run = 0 if fires_in_kind[(isleap(year), date(year, 1, 1).weekday())] else run + 1
        if run > _MAX_YEARS_WITHOUT_RESET:
            return f"no fire time in {year - run + 1}-{year}; a reset must come at least every 5 years"
    return None


def check_reset(reset: str) -> None:
    """Raise ValueError unless `reset` is never, daily, weekly, monthly or a valid 5-field cron expression."""
    if reset == NEVER or reset in CALENDAR_RESETS:
        return
    problem = _cron_problem(reset)
    if problem is not None:
        raise ValueError(
            f"reset {_shown(reset)}: not never, daily, weekly, monthly or a valid 5-field cron expression ({problem})"
        )


def _to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _ONE_MS


class OutsideCalendar(ValueError):
    """An instant before the first or after the last year the calendar holds."""


_EDGE = Period(id="", starts_ms=None, ends_ms=None)  # remembered for a neighbour past the calendar's edge


def _remember(cache: dict[_Key, Period], key: _Key, period: Period) -> None:
    if len(cache) >= 4096:  # a bound, not an LRU: readers walk a few recent periods
        cache.clear()
    cache[key] = period


class Schedule:
    """The periods of one board: its reset rule read in its time zone. Not tied to any clock."""

    def __init__(self, reset: str, timezone: str) -> None:
        check_reset(reset)
        self.reset = reset
        self.timezone = timezone
        self._tz = _load_zone(timezone)
        self._never = reset == NEVER
        self._cron = reset != NEVER and reset not in CALENDAR_RESETS
        # The period of the latest at(), as one tuple so that a reader never sees half of an update.
        self._current: tuple[int, int, Period] = (*_WHOLE_TIME, ALL) if self._never else (1, 0, ALL)
        # Neighbours and parsed ids, for readers walking the kept periods on every request.
        self._before: dict[int, Period] = {}
        self._after: dict[int, Period] = {}
        self._parsed: dict[str, Period] = {}

    def __repr__(self) -> str:
        return f"Schedule({self.reset!r}, {self.timezone!r})"

    def at(self, ms: int) -> Period:
        """The period containing the instant `ms`."""
        starts, ends, period = self._current
        if starts <= ms < ends:
            return period
        period = self._find(ms)
        if period.starts_ms is not None and period.ends_ms is not None:
            self._current = (period.starts_ms, period.ends_ms, period)
        return period

    def before(self, period: Period) -> Period | None:
        """The period just before `period` (None for a board that never resets, or before the
        calendar's first year)."""
        if period.starts_ms is None:
            return None
        found = self._before.get(period.starts_ms)
        if found is None:
            try:
                found = self._find(period.starts_ms - 1)
            except OutsideCalendar:
                # Before the first year the calendar holds (a four-yearly cron kept 1000 periods
                # back gets there): there is no period before this one, as there is none after
                # the last year in `after`.
                found = _EDGE
            _remember(self._before, period.starts_ms, found)
        return None if found is _EDGE else found

    def after(self, period: Period) -> Period | None:
        """The period just after `period` (None for a board that never resets, or after the
        calendar's last year)."""
        if period.ends_ms is None:
            return None
        found = self._after.get(period.ends_ms)
        if found is None:
            try:
                found = self._find(period.ends_ms)
            except OutsideCalendar:
                found = _EDGE
            _remember(self._after, period.ends_ms, found)
        return None if found is _EDGE else found

    def parse(self, period_id: str) -> Period | None:
        """The period named `period_id`, or None unless it is exactly an id this schedule gives."""
        if self._never:
            return ALL if period_id == ALL.id else None
        found = self._parsed.get(period_id)
        if found is not None:
            return found
        try:
            starts = self._id_start(period_id)
            if starts is None:
                return None
            found = self._find(starts)
        except (ValueError, OverflowError):
            return None
        # Formatting the found period's start again is what rejects every near miss: a day that is no
        # period, a cron time that is not a fire time, a repeated or skipped local time.
        if found.id != period_id:
            return None
        _remember(self._parsed, period_id, found)
        return found

    def kept(self, now_ms: int, keep: int) -> list[Period]:
        """The current period, then the `keep` calendar periods before it, newest first."""
        if keep < 0:
            raise ValueError(f"keep {keep}: must be 0 or more")
        periods = [self.at(now_ms)]
        for _ in range(keep):
            previous = self.before(periods[-1])
            if previous is None:
                break
            periods.append(previous)
        return periods

    def readable(self, period: Period, now_ms: int, keep: int) -> bool:
        """Whether `period` is current at `now_ms` or one of the `keep` before it."""
        return period in self.kept(now_ms, keep)

    def drop_ms(self, period: Period, keep: int) -> int | None:
        """The instant from which `period` is no longer readable: the start of the period `keep` + 1 after it."""
        if keep < 0:
            raise ValueError(f"keep {keep}: must be 0 or more")
        for _ in range(keep):
            following = self.after(period)
            if following is None:
                return None
            period = following
        return period.ends_ms

    def _local(self, ms: int) -> datetime:
        return (_EPOCH + timedelta(milliseconds=ms)).astimezone(self._tz)

    def _find(self, ms: int) -> Period:
        if self._never:
            return ALL
        try:
            if self._cron:
                starts, ends = self._cron_span(ms)
                local = self._local(starts)
                period_id = f"{local.year:04d}-{local.month:02d}-{local.day:02d}T{local.hour:02d}:{local.minute:02d}"
            else:
                starts, ends = self._calendar_span(ms)
                period_id = self._calendar_id(self._local(starts).date())
        except OverflowError as error:
            raise OutsideCalendar(f"instant {ms}: outside the years this schedule can compute") from error
        return Period(id=period_id, starts_ms=starts, ends_ms=ends)

    # Calendar resets

    def _calendar_id(self, day: date) -> str:
        if self.reset == "daily":
            return f"{day.year:04d}-{day.month:02d}-{day.day:02d}"
        if self.reset == "weekly":
            year, week, _ = day.isocalendar()
            return f"{year:04d}-W{week:02d}"
        return f"{day.year:04d}-{day.month:02d}"

    def _unit(self, day: date) -> date:
        if self.reset == "daily":
            return day
        if self.reset == "weekly":
            return day - timedelta(days=day.weekday())
        return day.replace(day=1)

    def _next_unit(self, unit: date) -> date:
        if self.reset == "daily":
            return unit + timedelta(days=1)
        if self.reset == "weekly":
            return unit + timedelta(days=7)
        return date(unit.year + unit.month // 12, unit.month % 12 + 1, 1)

    def _day_start(self, day: date) -> int:
        """The first instant whose local date is `day` or later."""
        midnight = datetime(day.year, day.month, day.day, tzinfo=self._tz)
        ms = _to_ms(midnight)
        if self._local(ms).replace(tzinfo=None) == midnight.replace(tzinfo=None):
            return ms  # fold=0: of a midnight that occurs twice, the first
        # Midnight falls in a gap. Its fold=0 reading, by the offset before the gap, is at or after the
        # gap's end; zoneinfo does not expose the transition itself, so search the day before for it.
        low, high = ms - 2 * _DAY_MS, ms
        while low < high:
            middle = (low + high) // 2
            if self._local(middle).date() >= day:
                high = middle
            else:
                low = middle + 1
        return low

    def _calendar_span(self, ms: int) -> tuple[int, int]:
        unit = self._unit(self._local(ms).date())
        starts = self._day_start(unit)
        following = self._next_unit(unit)
        ends = self._day_start(following)
        # Only an hour repeated across midnight would put `ms` past the next boundary by its local date.
        while ends <= ms:
            unit, starts = following, ends
            following = self._next_unit(unit)
            ends = self._day_start(following)
        return starts, ends

    # Cron resets

    def _canonical(self, ms: int) -> bool:
        # The second occurrence of a repeated local time is not a reset (see the module's docstring).
        return _to_ms(self._local(ms).replace(fold=0)) == ms

    def _cron_span(self, ms: int) -> tuple[int, int]:
        starts = self._cron_candidate(ms)
        # cronsim reads a fixed-time cron's start as a naive local time, so in a repeated hour its reverse
        # search can return a fire an occurrence too early; walking forward from it corrects that.
        previous = starts
        local = self._local(starts)
        for fire in itertools.islice(CronSim(self.reset, local), _MAX_CRON_STEPS):
            fire_ms = _to_ms(fire)
            if fire_ms <= previous or not self._canonical(fire_ms):
                continue  # the same naive reading can also give a fire before the one it started from
            if fire_ms > ms:
                return starts, fire_ms
            starts = previous = fire_ms
        raise ValueError(f"reset {_shown(self.reset)}: no fire time found after instant {ms}")

    def _cron_candidate(self, ms: int) -> int:
        local = self._local(ms)
        # cronsim's reverse search excludes its start unless the start has microseconds, in which case
        # the start's whole second is its first candidate: so fires at or before `ms`. replace() keeps the
        # fold; adding a timedelta would reset it.
        local = local.replace(microsecond=local.microsecond + 1)
        for fire in itertools.islice(CronSim(self.reset, local, reverse=True), _MAX_CRON_STEPS):
            fire_ms = _to_ms(fire)
            if fire_ms <= ms and self._canonical(fire_ms):
                return fire_ms
        raise ValueError(f"reset {_shown(self.reset)}: no fire time found before instant {ms}")

    # Ids

    def _id_start(self, period_id: str) -> int | None:
        """The start of the period that `period_id` names if it is well formed, else None."""
        if self._cron:
            match = _CRON_ID.fullmatch(period_id)
            if match is None:
                return None
            year, month, day, hour, minute = (int(part) for part in match.groups())
            return _to_ms(datetime(year, month, day, hour, minute, tzinfo=self._tz))
        if self.reset == "daily":
            match = _DAY_ID.fullmatch(period_id)
            if match is None:
                return None
            year, month, day = (int(part) for part in match.groups())
            return self._day_start(date(year, month, day))
        if self.reset == "weekly":
            match = _WEEK_ID.fullmatch(period_id)
            if match is None:
                return None
            year, week = (int(part) for part in match.groups())
            return self._day_start(date.fromisocalendar(year, week, 1))
        match = _MONTH_ID.fullmatch(period_id)
        if match is None:
            return None
        year, month = (int(part) for part in match.groups())
        return self._day_start(date(year, month, 1))
