"""The shapes of boards and their periods: what is read of them, and what operators create, change and retire."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from ..ranking import WATCHED_PLACES
from .fields import ONE_LINE, BoardId, Id, PeriodSpec, Rank, Reason, Timestamp, _Model

Limit = Annotated[int, Meta(ge=1, le=WATCHED_PLACES)]
Title = Annotated[str, Meta(min_length=1, max_length=100, pattern=ONE_LINE, description="1-100 characters on one line")]
Order = Annotated[
    Literal["desc", "asc"],
    Meta(
        description="desc: higher is better; asc: lower is better (times, strokes). Ties: subscore the same "
        "way (absent counts as 0), then whoever reached the value first, then user id"
    ),
]
Operator = Annotated[
    Literal["incr", "best", "set"],
    Meta(
        description="How a write changes an entry: incr adds its value (actions award only on incr boards), "
        "best keeps the better value, set keeps the latest"
    ),
]
Format = Annotated[
    Literal["number", "duration_ms"],
    Meta(description="How pages show a score: a number, or a duration in milliseconds"),
]
Reset = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=100,
        description="When a new period starts: never | daily | weekly (ISO weeks, Monday) | monthly | a 5-field "
        "cron expression that fires at least every 5 years, at local midnight (or the cron time) in the board's "
        "timezone. Checked beyond this schema: 400 VALIDATION_ERROR with details.field `reset`",
        examples=["weekly"],
    ),
]
Zone = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        description="An IANA time zone name. Checked beyond this schema: 400 VALIDATION_ERROR with details.field "
        "`timezone`",
        examples=["Europe/Berlin"],
    ),
]
KeepPeriods = Annotated[
    int,
    Meta(
        ge=0,
        le=1000,
        description="Finished periods kept readable (with period=...); older ones leave the board, never the history",
    ),
]


class PeriodData(_Model):
    """A span between two resets; startsAt and endsAt are null on a board that never resets."""

    id: str
    starts_at: Timestamp | None
    ends_at: Timestamp | None


class BoardData(_Model):
    """A board in use, with its current period."""

    id: str
    title: str
    order: Order
    operator: Operator
    reset: str
    timezone: str
    keep_periods: int
    format: Format
    period: PeriodData  # the current one


class BoardsData(_Model):
    boards: list[BoardData]


class BoardDetail(BoardData):
    """A board, with how many entries its current period has."""

    entries: int


class RankedEntry(_Model, omit_defaults=True):
    """One entry of a board period; subscore and metadata only when a trusted server gave them."""

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
    """The entries at ranks from .. from+limit-1 (fewer at the end of the board) and how many there are."""

    total: int


class AroundData(_Model):
    """A user's rank (null when not on the board, with no entries) and the entries around it."""

    board: str
    period: str
    rank: Rank | None
    entries: list[RankedEntry]
    total: int


class LookupData(_Model):
    """The entries of the users asked for that are on the board, by rank."""

    board: str
    period: str
    entries: list[RankedEntry]


class PeriodEntry(PeriodData):
    """A period and how many entries it has."""

    entries: int


class PeriodsData(_Model):
    """The current period and the kept finished ones that have entries, newest first."""

    board: str
    periods: list[PeriodEntry]


class UserBoard(_Model):
    """A user's standing in the current period of one board."""

    board: str
    period: str
    score: int
    rank: Rank
    percentile: float


class UserBoardsData(_Model):
    user_id: str
    boards: list[UserBoard]


class LookupRequest(_Model):
    """The users whose entries to show (a friends' board)."""

    user_ids: Annotated[list[Id], Meta(min_length=1, max_length=100)]
    period: PeriodSpec = "current"


class BoardTopQuery(_Model):
    limit: Annotated[Limit, Meta(description="How many entries, from rank 1")] = 10
    period: PeriodSpec = "current"


class RanksQuery(_Model):
    from_: Annotated[int, Meta(ge=1, le=2**53, description="The first rank shown")] = msgspec.field(
        default=1, name="from"
    )
    limit: Annotated[Limit, Meta(description="How many ranks from `from`")] = 10
    period: PeriodSpec = "current"


class AroundQuery(_Model):
    radius: Annotated[int, Meta(ge=0, le=25, description="Ranks shown on each side of the user")] = 5
    period: PeriodSpec = "current"


class BoardPath(_Model):
    board: BoardId


class AroundPath(_Model):
    board: BoardId
    user_id: Id


# A board made and retired at run time, as an operator's examples name one.
SeasonBoardId = Annotated[BoardId, Meta(examples=["season-1"])]


# An operator's act on the catalog is kept in the audit record with the operator and this reason.
ActReason = Annotated[
    Reason, Meta(description="Why: kept with the act in the audit record (1-500 characters on one line; optional)")
]


class BoardCreate(_Model):
    """A board to create at run time; it survives restarts. Omitted fields as for `global`, the title
    defaults to the id. An id in use or retired is refused (409 BOARD_EXISTS)."""

    id: SeasonBoardId
    title: Title | None = None
    order: Order = "desc"
    operator: Operator = "incr"
    reset: Reset = "never"
    timezone: Zone = "UTC"
    keep_periods: KeepPeriods = 12
    format: Format = "number"
    reason: ActReason | None = None


Fixed = Annotated[
    Any,
    Meta(
        extra_json_schema={"not": {}},  # no value is valid: a schema-driven client sends none
        description="Cannot change on a board in use (it would re-rank or re-period what is there): "
        "given, the change is refused with 400 VALIDATION_ERROR. Retire the board and create another",
    ),
]


class BoardChange(_Model):
    """What may change on a board in use; absent fields stay as they are. Order, operator, reset and
    timezone are named only to be refused: ignored, a client would believe them changed."""

    title: Title | None = None
    keep_periods: KeepPeriods | None = None
    format: Format | None = None
    reason: ActReason | None = None
    order: Fixed | UnsetType = UNSET
    operator: Fixed | UnsetType = UNSET
    reset: Fixed | UnsetType = UNSET
    timezone: Fixed | UnsetType = UNSET

    def __post_init__(self) -> None:
        for name in ("order", "operator", "reset", "timezone"):
            if getattr(self, name) is not UNSET:
                raise ValueError(
                    f"`{name}` cannot change on a board in use: retire it and create another - at `$.{name}`"
                )


class BoardRetire(_Model):
    """Why a board is retired (a body is optional)."""

    reason: ActReason | None = None


class RetiredData(_Model):
    """A retired board: no longer listed, read or written; its id is never used again."""

    board: str
    retired: bool


class OperatorBoardPath(_Model):
    board: SeasonBoardId
