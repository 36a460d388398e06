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


class ActionEntry(_Model):
    """One action of the catalog: what an initialize and update of it award, on which boards, how
    soon after initialize it may be completed, and whether a trusted server must attest it first."""

    type: Annotated[str, Meta(description="The actionType to initialize", examples=["COMPLETE_QUEST"])]
    score: Worth
    min_seconds: Annotated[
        float,
        Meta(ge=0, description="An update sooner than this after initialize is refused (400 ACTION_TOO_FAST)"),
    ]
    boards: Annotated[list[str], Meta(description="The boards it awards on, in one transaction")]
    attest: Annotated[
        bool,
        Meta(
            description="An update is refused (409 NOT_ATTESTED, the token stays usable) until a trusted server "
            "attested the user's action: POST /api/v1/actions/{actionId}/attest"
        ),
    ]
    hold_over_per_hour: Annotated[
        int | None,
        Meta(
            description="A user's updates of this action beyond this many in any rolling hour (held ones count) are "
            "held for an operator: 202 with status `held` (null: never held)"
        ),
    ] = None
    hold_over: Annotated[
        CountWindowData | None,
        Meta(description="Updates beyond `count` in any rolling `windowS` seconds (held ones count) are held"),
    ] = None
    hold_within_s: Annotated[
        float | None,
        Meta(
            description="An update sooner than this many seconds after the user's previous completion of this "
            "action (held or not) is held"
        ),
    ] = None
    max_score_per_hour: Annotated[
        int | None,
        Meta(
            description="An update that would take the user's awards on one of its boards in the rolling hour "
            "past this is held"
        ),
    ] = None
    velocity: Annotated[
        VelocityData | None,
        Meta(description="An update whose window's score is an outlier against the user's earlier windows is held"),
    ] = None
    rate_limit: Annotated[
        CountWindowData | None,
        Meta(
            description="Updates beyond `count` in `windowS` seconds answer 429 RATE_LIMITED with Retry-After "
            "(the token stays usable)"
        ),
    ] = None


class CountWindowData(_Model):
    """At most `count` in `windowS` seconds."""

    count: int
    window_s: int


class VelocityData(_Model):
    """The velocity rule (docs/operators.md has the formula): the user's score of the action in the last
    `windowS` seconds against the `windows` windows before it, once `minSamples` of them had any."""

    window_s: int
    windows: int
    min_samples: int
    z: float


class ActionsData(_Model):
    """The action catalog, by type."""

    actions: list[ActionEntry]


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


HeldId = Annotated[int, Meta(ge=1, le=2**63 - 1, description="A held award's id")]
HeldStatus = Literal["pending", "approved", "rejected"]


class HeldData(_Model):
    """202 of an update: the award is held for an operator (the token spent, the action completed,
    nothing on the boards) until approved (it lands) or rejected."""

    status: Literal["held"]
    id: HeldId
    user_id: str
    action_type: str
    action_id: str
    score_increment: Worth


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
        description="Which period: `current` (the default: the one now), `previous` (the one before it), or a "
        "period's id, its start in the board's timezone: `YYYY-MM-DD` (daily), `YYYY-Www` (ISO week, weekly), "
        "`YYYY-MM` (monthly), `YYYY-MM-DDTHH:MM` (cron), `all` (a board that never resets). A finished period "
        "stays readable until keepPeriods newer ones exist; otherwise 404 PERIOD_NOT_FOUND",
        examples=["current", "previous", "2026-W49"],
    ),
]
Value = Annotated[int, Meta(ge=-(2**53), le=2**53, description="An integer within ±2^53")]
Limit = Annotated[int, Meta(ge=1, le=WATCHED_PLACES)]
Title = Annotated[str, Meta(min_length=1, max_length=100)]
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


class Passer(_Model):
    """Who passed the user: their id, name and new score."""

    user_id: str
    username: str
    score: Score


class Overtake(_Model):
    """Another user's award or trusted write passed this user on a board: who, and the user's ranks."""

    board: str
    period: str
    user_id: str
    by: Passer
    previous_rank: Rank
    new_rank: Rank


class Notification(_Model):
    """A kept notice: `id` orders them (the `after` of the next read), `data` is the live message's."""

    id: int
    type: Literal["overtaken"]
    created_at: Timestamp
    data: Overtake


class NotificationsData(_Model):
    """The caller's kept notices (the newest 100 of the last 7 days) after `after`, oldest first."""

    notifications: list[Notification]


class NotificationsQuery(_Model):
    after: Annotated[
        int, Meta(ge=0, le=2**63 - 1, description="Only notices numbered after this id (0: every kept one)")
    ] = 0


class ScoreWriteData(_Model):
    """What a trusted write did: `improved` is true when the stored value changed; `previousScore`
    is null on a first entry in the period."""

    board: str
    period: str
    user_id: str
    previous_score: int | None
    new_score: int
    rank: Rank
    improved: bool


class AttestData(_Model):
    """An attestation held: the first one of this user's action, whichever attest made it, until the
    award that needs it spends it."""

    action_id: str
    user_id: str
    attested_at: Timestamp


class RetiredData(_Model):
    """A retired board: no longer listed, read or written; its id is never used again."""

    board: str
    retired: bool


class LookupRequest(_Model):
    """The users whose entries to show (a friends' board)."""

    user_ids: Annotated[list[Id], Meta(min_length=1, max_length=100)]
    period: PeriodSpec = "current"


class ScoreWriteRequest(_Model):
    """A trusted server's value for one user in the board's current period, applied by the board's
    operator: incr adds it, best keeps it when better (score, then subscore, the board's way), set
    keeps it. A user unknown so far is created. On an incr board a sum that would leave ±2^53 is
    refused with 400 VALIDATION_ERROR naming `score` (details.newScore) and writes nothing."""

    user_id: Id
    score: Value
    subscore: (
        Annotated[Value, Meta(description="Breaks ties of score, the board's way (absent counts as 0)")] | None
    ) = None
    metadata: (
        Annotated[
            dict[str, Any],
            Meta(description="A JSON object of at most 1 KiB (as compact JSON), shown with the entry"),
        ]
        | None
    ) = None


# A board made and retired at run time, as an operator's examples name one.
SeasonBoardId = Annotated[BoardId, Meta(examples=["season-1"])]


# The rules that held an award, as the operators' held list and the user's export show them.
HoldingRules = Annotated[
    list[str],
    Meta(
        description="The cheat rules that held it: hold_over_per_hour, hold_over, hold_within_s, "
        "max_score_per_hour, velocity"
    ),
]


class HeldBoard(_Model):
    """A board period a held award was to land on when it was held."""

    board: str
    period: str


class HeldAwardData(_Model):
    """A held award: whose, for what, where it was to land, and its operator's decision once made.
    `landed`, in an approval's answer only: what it did on each board it landed on."""

    id: HeldId
    user_id: str
    action_type: str
    action_id: str
    score: Worth
    boards: list[HeldBoard]
    status: HeldStatus
    created_at: Timestamp
    decided_by: Annotated[str | None, Meta(description="The operator's user id")]
    reason: str | None
    decided_at: Timestamp | None
    landed: Annotated[list[AwardBoard], Meta(description="Where an approval landed it (empty otherwise)")]
    rules: HoldingRules


class HeldListData(_Model):
    """Held awards of a status, oldest first; `nextAfter` is the `after` of the next page (null: no more)."""

    held: list[HeldAwardData]
    next_after: int | None


class HeldQuery(_Model):
    status: Annotated[HeldStatus, Meta(description="Which held awards (default the pending ones)")] = "pending"
    after: Annotated[int, Meta(ge=0, le=2**63 - 1, description="Only those numbered after this id")] = 0
    limit: Annotated[int, Meta(ge=1, le=100, description="At most this many")] = 100


class ApprovePath(_Model):
    held_id: Annotated[HeldId, Meta(examples=[7])]


class RejectPath(_Model):
    # Another example than the approval's: a held award is decided once.
    held_id: Annotated[HeldId, Meta(examples=[8])]


class DecisionRequest(_Model):
    """Why an operator approves or rejects a held award, kept with the decision."""

    reason: Annotated[str, Meta(min_length=1, max_length=500, examples=["Verified the replay"])]


class AttestRequest(_Model):
    """The player whose action a trusted server attests."""

    user_id: Id


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


class BoardChange(_Model):
    """What may change on a board in use; absent fields stay as they are. (Order, operator, reset and
    timezone would re-rank or re-period what is there: retire the board and create another.)"""

    title: Title | None = None
    keep_periods: KeepPeriods | None = None
    format: Format | None = None


class BoardTopQuery(_Model):
    limit: Annotated[Limit, Meta(description="How many entries, from rank 1")] = 10
    period: PeriodSpec = "current"


class RanksQuery(_Model):
    from_: Annotated[int, Meta(ge=1, le=2**31, description="The first rank shown")] = msgspec.field(
        default=1, name="from"
    )
    limit: Annotated[Limit, Meta(description="How many ranks from `from`")] = 10
    period: PeriodSpec = "current"


class AroundQuery(_Model):
    radius: Annotated[int, Meta(ge=0, le=25, description="Ranks shown on each side of the user")] = 5
    period: PeriodSpec = "current"


MAX_IDEMPOTENCY_KEY_CHARS = 100
IdempotencyKey = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_CHARS,
        pattern=r"^[!-~]+(?!\n)$",
        description="1-100 visible ASCII characters naming this write. A retry with the same key and body, "
        "within limits.idempotency_hours, answers the first answer again and changes nothing; the same key "
        "with another body is 409 IDEMPOTENCY_CONFLICT",
        examples=["race-7f3a-lap-2"],
    ),
]


class ScoreWriteHeaders(msgspec.Struct, kw_only=True):
    """The headers a trusted write requires."""

    idempotency_key: IdempotencyKey = msgspec.field(name="Idempotency-Key")


class StreamQuery(_Model):
    max_rate: (
        Annotated[float, Meta(ge=0.1, le=50, description="At most this many events a second; the latest state wins")]
        | None
    ) = None


class StreamHeaders(msgspec.Struct, kw_only=True):
    """The headers an event stream reads."""

    last_event_id: (
        Annotated[
            int,
            Meta(
                ge=0,
                le=2**53,
                description="The `id` of the last event a reconnecting client saw: the stream goes on from "
                "the next id, with a fresh snapshot",
            ),
        ]
        | None
    ) = msgspec.field(default=None, name="Last-Event-ID")


class BoardPath(_Model):
    board: BoardId


class ActionPath(_Model):
    action_id: Annotated[Id, Meta(examples=["race-41"])]


class OperatorBoardPath(_Model):
    board: SeasonBoardId


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


class SwaggerUiPath(_Model):
    filename: Annotated[
        str, Meta(min_length=1, description="A file of Swagger UI's distribution", examples=["swagger-ui.css"])
    ]
