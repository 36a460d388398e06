"""What every request and response shape is built from: the base struct and the field types the areas share."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from ..settings import BOARD_ID_PATTERN, ID_PATTERN

Id = Annotated[
    str,
    Meta(
        pattern=ID_PATTERN,
        min_length=1,
        max_length=100,
        description="1-100 characters of A-Z a-z 0-9 _ . : -",
        examples=["user-123"],
    ),
]
TokenText = Annotated[str, Meta(min_length=1, max_length=2048, description="The action token")]
Timestamp = Annotated[str, Meta(description="ISO 8601 UTC, ending in Z", examples=["2026-01-15T10:30:00Z"])]

# A user's value on a board. Awards only add, but a trusted server may write a negative value (on an
# incr board, one that subtracts), so no bound is promised beyond the integer.
Score = Annotated[int, Meta(description="An integer; below 0 only where a trusted server wrote so")]
Worth = Annotated[int, Meta(ge=0)]  # what an action awards
Rank = Annotated[int, Meta(ge=1)]
BoardId = Annotated[
    str,
    Meta(
        pattern=BOARD_ID_PATTERN,
        min_length=1,
        max_length=64,
        description="A board id: 1-64 characters of a-z 0-9 _ -",
        examples=["weekly"],
    ),
]
# One line without control characters (C0, DEL, C1, the Unicode line and paragraph separators)
# nor the bidirectional overrides and isolates, which reorder what follows them on a page: such
# text is shown on pages and in logs (and PostgreSQL's text cannot hold a NUL). At least one
# character shows: a reason or title of spaces or zero-width characters alone says nothing.
_UNSHOWN = r"\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
# The spaces and the zero-width and invisible characters (none of them in _UNSHOWN): the text may
# start with a run of them, then one that shows; no part can match two ways, so the pattern runs
# in linear time even on text it refuses.
_BLANK = r" \u00a0\u1680\u2000-\u200f\u202f\u205f\u2060-\u2064\u3000\ufeff"
ONE_LINE = rf"^[{_BLANK}]*[^{_UNSHOWN}{_BLANK}][^{_UNSHOWN}]*(?!\n)$"
Reason = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=500,
        pattern=ONE_LINE,
        description="Why: kept with the act in the audit record (1-500 characters on one line)",
        examples=["Speed hack confirmed from replays"],
    ),
]
PeriodSpec = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=32,
        description="Which period: `current` (the default: the one now), `previous` (the one before it), or a "
        "period's id, its start in the board's timezone: `YYYY-MM-DD` (daily), `YYYY-Www` (ISO week, weekly), "
        "`YYYY-MM` (monthly), `YYYY-MM-DDTHH:MM` (cron), `all` (a board that never resets). A finished period "
        "stays readable while it is one of the keepPeriods periods before the current one; otherwise 404 "
        "PERIOD_NOT_FOUND",
        examples=["current", "previous", "2026-W49"],
    ),
]
Value = Annotated[int, Meta(ge=-(2**53), le=2**53, description="An integer within ±2^53")]


class _Model(msgspec.Struct, rename="camel", kw_only=True):
    pass


class UserPath(_Model):
    user_id: Id
