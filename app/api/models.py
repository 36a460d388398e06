"""Request and response shapes, declared once: they validate input and feed the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from ..config import BOARD_ID_PATTERN, ID_PATTERN
from ..errors import CLOSE_UNAUTHORIZED
from ..ranking import WATCHED_PLACES

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


class _Model(msgspec.Struct, rename="camel", kw_only=True):
    pass


class InitializeRequest(_Model):
    """Start an action: ask for a token that awards its catalog score once."""

    action_type: Id
    action_id: Id
    user_id: Id | None = None


class UpdateRequest(_Model):
    """Complete an action with the token from initialize."""

    action_token: TokenText
    action_id: Id
    user_id: Id | None = None


class InitializeData(_Model):
    action_token: str
    expires_at: Timestamp
    expected_score: Worth


class BoardEntry(_Model):
    rank: Rank
    user_id: str
    username: str
    score: Score
    last_updated: Timestamp


class TopData(_Model):
    leaderboard: list[BoardEntry]
    updated_at: Timestamp


class AwardBoard(_Model):
    """What an award did on one of its boards (previousScore 0 on a first entry in the period)."""

    board: str
    period: str
    previous_score: Score
    new_score: Score
    rank: Rank


class UpdateData(_Model):
    user_id: str
    previous_score: Score
    new_score: Score
    score_increment: Worth
    rank: Rank
    leaderboard: list[BoardEntry]
    boards: list[AwardBoard]


class UserScoreData(_Model):
    user_id: str
    username: str
    score: Score
    rank: Rank | None
    percentile: float | None


class HealthData(_Model):
    status: str


class ErrorBody(_Model, omit_defaults=True):
    code: str
    message: str
    details: Any = None


class ErrorEnvelope(msgspec.Struct, kw_only=True):
    """Every failure: `{"success": false, "error": {...}}`."""

    success: Literal[False]
    error: ErrorBody


class TopQuery(_Model):
    limit: Annotated[int, Meta(ge=1, le=WATCHED_PLACES)] = 10


class UserPath(_Model):
    user_id: Id


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
PeriodSpec = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=32,
        description="`current`, `previous`, or a period id: YYYY-MM-DD (daily), YYYY-Www (weekly), "
        "YYYY-MM (monthly), YYYY-MM-DDTHH:MM (cron), all (never)",
        examples=["current"],
    ),
]
Value = Annotated[int, Meta(ge=-(2**53), le=2**53, description="An integer within ±2^53")]
Limit = Annotated[int, Meta(ge=1, le=WATCHED_PLACES)]
Title = Annotated[str, Meta(min_length=1, max_length=100)]
Order = Literal["desc", "asc"]
Operator = Literal["incr", "best", "set"]
Format = Literal["number", "duration_ms"]
Reset = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=100,
        description="never | daily | weekly | monthly | a 5-field cron expression",
        examples=["weekly"],
    ),
]
Zone = Annotated[str, Meta(min_length=1, max_length=64, description="An IANA time zone", examples=["Europe/Berlin"])]


class PeriodData(_Model):
    id: str
    starts_at: Timestamp | None
    ends_at: Timestamp | None


class BoardData(_Model):
    id: str
    title: str
    order: Order
    operator: Operator
    reset: str
    timezone: str
    keep_periods: int
    format: Format
    period: PeriodData


class BoardsData(_Model):
    boards: list[BoardData]


class BoardDetail(BoardData):
    entries: int


class RankedEntry(_Model, omit_defaults=True):
    rank: Rank
    user_id: str
    username: str
    score: int
    last_updated: Timestamp
    subscore: int | None = None
    metadata: msgspec.Raw | None = None  # the JSON object a trusted server gave


class BoardTopData(_Model):
    board: str
    period: str
    leaderboard: list[RankedEntry]
    updated_at: Timestamp


class RanksData(BoardTopData):
    total: int


class AroundData(_Model):
    board: str
    period: str
    rank: Rank | None
    entries: list[RankedEntry]
    total: int


class LookupData(_Model):
    board: str
    period: str
    entries: list[RankedEntry]


class PeriodEntry(PeriodData):
    entries: int


class PeriodsData(_Model):
    board: str
    periods: list[PeriodEntry]


class UserBoard(_Model):
    board: str
    period: str
    score: int
    rank: Rank
    percentile: float


class UserBoardsData(_Model):
    user_id: str
    boards: list[UserBoard]


class ScoreWriteData(_Model):
    board: str
    period: str
    user_id: str
    previous_score: int | None
    new_score: int
    rank: Rank
    improved: bool


class RetiredData(_Model):
    board: str
    retired: bool


class LookupRequest(_Model):
    """The users whose entries to show (a friends' board)."""

    user_ids: Annotated[list[Id], Meta(min_length=1, max_length=100)]
    period: PeriodSpec = "current"


class ScoreWriteRequest(_Model):
    """A trusted server's value for one user, applied by the board's operator."""

    user_id: Id
    score: Value
    subscore: Value | None = None
    metadata: (
        Annotated[dict[str, Any], Meta(description="A JSON object of at most 1 KiB, shown with the entry")] | None
    ) = None


class BoardCreate(_Model):
    """A board to create at run time; omitted fields as for `global`."""

    id: BoardId
    title: Title | None = None
    order: Order = "desc"
    operator: Operator = "incr"
    reset: Reset = "never"
    timezone: Zone = "UTC"
    keep_periods: Annotated[int, Meta(ge=0, le=1000)] = 12
    format: Format = "number"


class BoardChange(_Model):
    """What may change on a board in use (order, operator, reset and zone would re-rank or re-period
    what is there: retire the board and create another)."""

    title: Title | None = None
    keep_periods: Annotated[int, Meta(ge=0, le=1000)] | None = None
    format: Format | None = None


class BoardTopQuery(_Model):
    limit: Limit = 10
    period: PeriodSpec = "current"


class RanksQuery(_Model):
    from_: Annotated[int, Meta(ge=1, le=2**31)] = msgspec.field(default=1, name="from")
    limit: Limit = 10
    period: PeriodSpec = "current"


class AroundQuery(_Model):
    radius: Annotated[int, Meta(ge=0, le=25)] = 5
    period: PeriodSpec = "current"


class BoardPath(_Model):
    board: BoardId


class AroundPath(_Model):
    board: BoardId
    user_id: Id


LIVE_TOKEN_HELP = f"A user JWT, checked before anything is sent (invalid: closed with {CLOSE_UNAUTHORIZED})"


class PageQuery(_Model):
    board: (
        Annotated[
            str,
            Meta(
                description="The board shown (its id); any other value shows the default board with a notice",
                examples=["weekly"],
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET


class LiveQuery(_Model):
    token: Annotated[str, Meta(description=LIVE_TOKEN_HELP)] | msgspec.UnsetType = msgspec.UNSET


class StaticPath(_Model):
    filename: Annotated[str, Meta(min_length=1, description="A file of the static folder", examples=["board.js"])]
