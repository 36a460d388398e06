"""Request and response models of the Scoreboard API, generated from the server's OpenAPI document
by clients/python/generate_models.py: regenerate it rather than edit it."""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class _Model(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    """Fields are snake_case here and camelCase on the wire."""


class ActData(_Model):
    """One moderation act as the audit record keeps it. `amount`: an adjustment's delta, a removed
    entry's score, or how many entries a wipe removed; `details`: the entries removed."""

    id: int
    action: Literal[
        "adjust", "change_board", "create_board", "disqualify", "reinstate", "remove", "retire_board", "wipe"
    ]
    operator: str
    reason: str
    user_id: str | None
    board: str | None
    period: str | None
    amount: int | None
    details: dict[str, Any] | None
    created_at: str


class ActionEntry(_Model):
    """One action of the catalog: what an initialize and update of it award, on which boards, how soon
    after initialize it may be completed, and whether a trusted server must attest it first."""

    type: str
    score: int
    min_seconds: float
    boards: list[str]
    attest: bool
    hold_over_per_hour: int | None = None
    hold_over: CountWindowData | None = None
    hold_within_s: float | None = None
    max_score_per_hour: int | None = None
    velocity: VelocityData | None = None
    rate_limit: CountWindowData | None = None


class ActionsData(_Model):
    """The action catalog, by type."""

    actions: list[ActionEntry]


class AdjustRequest(_Model):
    """A signed correction of a user's entry: `delta` is added to it (a negative one takes off)."""

    delta: int
    reason: str
    period: str = "current"


class AdjustedData(_Model):
    """The corrected entry: its score before (null: none) and after, and its rank now (null while the
    user is disqualified)."""

    board: str
    period: str
    user_id: str
    previous_score: int | None
    new_score: int
    rank: int | None
    act: ActData


class AroundData(_Model):
    """A user's rank (null when not on the board, with no entries) and the entries around it."""

    board: str
    period: str
    rank: int | None
    entries: list[RankedEntry]
    total: int


class AttestData(_Model):
    """An attestation held: the first one of this user's action, whichever attest made it, until the
    award that needs it spends it."""

    action_id: str
    user_id: str
    attested_at: str


class AttestRequest(_Model):
    """The player whose action a trusted server attests."""

    user_id: str


class AwardBoard(_Model):
    """What an award did on one of its boards (previousScore 0 on a first entry in the period)."""

    board: str
    period: str
    previous_score: int
    new_score: int
    rank: int


class BoardChange(_Model):
    """What may change on a board in use; absent fields stay as they are. Order, operator, reset and
    timezone are named only to be refused: ignored, a client would believe them changed."""

    title: str | None = None
    keep_periods: int | None = None
    format: Literal["duration_ms", "number"] | None = None
    reason: str | None = None
    order: Any | msgspec.UnsetType = msgspec.UNSET
    operator: Any | msgspec.UnsetType = msgspec.UNSET
    reset: Any | msgspec.UnsetType = msgspec.UNSET
    timezone: Any | msgspec.UnsetType = msgspec.UNSET


class BoardCreate(_Model):
    """A board to create at run time; it survives restarts. Omitted fields as for `global`, the title
    defaults to the id. An id in use or retired is refused (409 BOARD_EXISTS)."""

    id: str
    title: str | None = None
    order: Literal["asc", "desc"] = "desc"
    operator: Literal["best", "incr", "set"] = "incr"
    reset: str = "never"
    timezone: str = "UTC"
    keep_periods: int = 12
    format: Literal["duration_ms", "number"] = "number"
    reason: str | None = None


class BoardData(_Model):
    """A board in use, with its current period."""

    id: str
    title: str
    order: Literal["asc", "desc"]
    operator: Literal["best", "incr", "set"]
    reset: str
    timezone: str
    keep_periods: int
    format: Literal["duration_ms", "number"]
    period: PeriodData


class BoardDetail(_Model):
    """A board, with how many entries its current period has."""

    id: str
    title: str
    order: Literal["asc", "desc"]
    operator: Literal["best", "incr", "set"]
    reset: str
    timezone: str
    keep_periods: int
    format: Literal["duration_ms", "number"]
    period: PeriodData
    entries: int


class BoardEntry(_Model):
    rank: int
    user_id: str
    username: str
    score: int
    last_updated: str


class BoardRetire(_Model):
    """Why a board is retired (a body is optional)."""

    reason: str | None = None


class BoardTopData(_Model):
    board: str
    period: str
    leaderboard: list[RankedEntry]
    updated_at: str


class BoardsData(_Model):
    boards: list[BoardData]


class CountWindowData(_Model):
    """At most `count` in `windowS` seconds."""

    count: int
    window_s: int


class DecisionForm(_Model):
    """An approval or rejection of a held award, from the queue's form."""

    csrf: str
    reason: str


class DecisionRequest(_Model):
    """Why an operator approves or rejects a held award, kept with the decision."""

    reason: str


class ErasedData(_Model):
    """An erasure happened: the user is on no board and no row holds their id or name."""

    erased: bool


class ErrorBody(_Model):
    code: str
    message: str
    details: Any = None


class ErrorEnvelope(_Model):
    """Every failure: `{"success": false, "error": {...}}`."""

    success: Literal[False]
    error: ErrorBody


class ExportData(_Model):
    """Everything kept about the caller: the user, their entries, awards, changes, tokens, notices,
    attestations, held awards, the actions completed before the kept history, operators' moderation
    acts on them (and theirs, as an operator) and the held awards they decided as an operator.
    `user` is null when no user was made for the id: an operator who never played, a player whose
    action a game server attested before they played."""

    user: ExportedUser | None
    entries: list[ExportedEntry]
    awards: list[ExportedAward]
    history: list[ExportedChange]
    tokens: list[ExportedToken]
    notifications: list[Notification]
    attestations: list[ExportedAttestation]
    held: list[ExportedHeld]
    completed_actions: list[ExportedCompletion]
    acts: list[ActData]
    decisions: list[ExportedDecision]


class ExportedAttestation(_Model):
    """A trusted server's attestation of one of the user's actions, not spent yet."""

    action_id: str
    service: str
    created_at: str


class ExportedAward(_Model):
    """An award the user completed (its score on the first of its boards)."""

    id: int
    action_type: str
    action_id: str
    score_change: int
    previous_score: int
    new_score: int
    created_at: str


class ExportedChange(_Model):
    """A change of one of the user's entries: by an award (`awardId`) or a trusted server (`service`)."""

    id: int
    board: str
    period: str
    award_id: int | None
    service: str | None
    value: int
    subscore: int | None
    previous_score: int | None
    new_score: int
    metadata: dict[str, Any] | None
    created_at: str


class ExportedCompletion(_Model):
    """An action the user completed whose award the history no longer keeps (retention): it cannot be
    completed again."""

    action_id: str
    completed_at: str


class ExportedDecision(_Model):
    """A held award of another user's that the user decided as an operator."""

    held_id: int
    status: str
    reason: str | None
    decided_at: str | None


class ExportedEntry(_Model):
    """The user's entry on one period of one board."""

    board: str
    period: str
    score: int
    subscore: int | None
    metadata: dict[str, Any] | None
    updated_at: str


class ExportedHeld(_Model):
    """One of the user's awards a cheat rule held, and its operator's decision once made."""

    id: int
    action_type: str
    action_id: str
    score: int
    status: str
    reason: str | None
    created_at: str
    decided_at: str | None
    rules: list[str]


class ExportedToken(_Model):
    """An action token issued to the user (`usedAt` null while unspent)."""

    action_type: str
    action_id: str
    score_increment: int
    issued_at: str
    expires_at: str
    used_at: str | None


class ExportedUser(_Model):
    user_id: str
    username: str
    created_at: str
    updated_at: str


class HealthData(_Model):
    status: str


class HeldAwardData(_Model):
    """A held award: whose, for what, where it was to land, and its operator's decision once made.
    `landed`, in an approval's answer only: what it did on each board it landed on."""

    id: int
    user_id: str
    action_type: str
    action_id: str
    score: int
    boards: list[HeldBoard]
    status: Literal["approved", "pending", "rejected"]
    created_at: str
    decided_by: str | None
    reason: str | None
    decided_at: str | None
    landed: list[AwardBoard]
    rules: list[str]


class HeldBoard(_Model):
    """A board period a held award was to land on when it was held."""

    board: str
    period: str


class HeldData(_Model):
    """202 of an update: the award is held for an operator (the token spent, the action completed,
    nothing on the boards) until approved (it lands) or rejected."""

    status: Literal["held"]
    id: int
    user_id: str
    action_type: str
    action_id: str
    score_increment: int


class HeldListData(_Model):
    """Held awards of a status, oldest first; `nextAfter` is the `after` of the next page (null: no
    more)."""

    held: list[HeldAwardData]
    next_after: int | None


class HistoryEntry(_Model):
    """One change of the user's entry on one board period, newest first: an award (`actionType`,
    `actionId`), a trusted server's write (`service`) or an operator's correction (`actId`)."""

    id: int
    kind: Literal["award", "correction", "trusted"]
    board: str
    period: str
    action_type: str | None
    action_id: str | None
    service: str | None
    act_id: int | None
    value: int
    subscore: int | None
    previous_score: int | None
    new_score: int
    created_at: str


class InitializeData(_Model):
    action_token: str
    expires_at: str
    expected_score: int


class InitializeRequest(_Model):
    """Start an action: ask for a token that awards its catalog score once."""

    action_type: str
    action_id: str
    user_id: str | None = None


class LookupData(_Model):
    """The entries of the users asked for that are on the board, by rank."""

    board: str
    period: str
    entries: list[RankedEntry]


class LookupRequest(_Model):
    """The users whose entries to show (a friends' board)."""

    user_ids: list[str]
    period: str = "current"


class ModerationRequest(_Model):
    """Why an operator acts."""

    reason: str


class Notification(_Model):
    """A kept notice: `id` orders them (the `after` of the next read), `data` is the live message's."""

    id: int
    type: Literal["overtaken"]
    created_at: str
    data: Overtake


class NotificationsData(_Model):
    """The caller's kept notices (the newest 100 of the last 7 days) after `after`, oldest first."""

    notifications: list[Notification]


class Overtake(_Model):
    """Another user's award or trusted write passed this user on a board: who, and the user's ranks."""

    board: str
    period: str
    user_id: str
    by: Passer
    previous_rank: int
    new_rank: int


class Passer(_Model):
    """Who passed the user: their id, name and new score."""

    user_id: str
    username: str
    score: int


class PeriodData(_Model):
    """A span between two resets; startsAt and endsAt are null on a board that never resets."""

    id: str
    starts_at: str | None
    ends_at: str | None


class PeriodEntry(_Model):
    """A period and how many entries it has."""

    id: str
    starts_at: str | None
    ends_at: str | None
    entries: int


class PeriodsData(_Model):
    """The current period and the kept finished ones that have entries, newest first."""

    board: str
    periods: list[PeriodEntry]


class RankedEntry(_Model):
    """One entry of a board period; subscore and metadata only when a trusted server gave them."""

    rank: int
    user_id: str
    username: str
    score: int
    last_updated: str
    subscore: int | None = None
    metadata: Any = None


class RanksData(_Model):
    """The entries at ranks from .. from+limit-1 (fewer at the end of the board) and how many there
    are."""

    board: str
    period: str
    leaderboard: list[RankedEntry]
    updated_at: str
    total: int


class RemovedData(_Model):
    """The entry taken off the board period: its score is the act's `amount`."""

    board: str
    period: str
    user_id: str
    removed_score: int
    act: ActData


class RetiredData(_Model):
    """A retired board: no longer listed, read or written; its id is never used again."""

    board: str
    retired: bool


class ScoreWriteData(_Model):
    """What a trusted write did: `improved` is true when the stored value changed; `previousScore` is
    null on a first entry in the period."""

    board: str
    period: str
    user_id: str
    previous_score: int | None
    new_score: int
    rank: int
    improved: bool


class ScoreWriteRequest(_Model):
    """A trusted server's value for one user in the board's current period, applied by the board's
    operator: incr adds it, best keeps it when better (score, then subscore, the board's way), set
    keeps it. A user unknown so far is created. On an incr board a sum that would leave ±2^53 is
    refused with 400 VALIDATION_ERROR naming `score` (details.newScore) and writes nothing."""

    user_id: str
    score: int
    subscore: int | None = None
    metadata: dict[str, Any] | None = None


class SignInForm(_Model):
    """An operator's JWT, whose `roles` claim holds auth.admin_role; kept in the session cookie only."""

    token: str


class SignOutForm(_Model):
    csrf: str


class TopData(_Model):
    leaderboard: list[BoardEntry]
    updated_at: str


class UpdateData(_Model):
    user_id: str
    previous_score: int
    new_score: int
    score_increment: int
    rank: int
    leaderboard: list[BoardEntry]
    boards: list[AwardBoard]


class UpdateRequest(_Model):
    """Complete an action with the token from initialize."""

    action_token: str
    action_id: str
    user_id: str | None = None


class UserBoard(_Model):
    """A user's standing in the current period of one board."""

    board: str
    period: str
    score: int
    rank: int
    percentile: float


class UserBoardsData(_Model):
    user_id: str
    boards: list[UserBoard]


class UserHistoryData(_Model):
    """A user's history for operators: changes newest first, one page (`nextAfter`, the `after` of the
    next page; null: no more), the acts on them (newest first, at most 100) and whether they are
    disqualified."""

    user_id: str
    username: str
    disqualified: bool
    disqualified_at: str | None
    history: list[HistoryEntry]
    next_after: int | None
    acts: list[ActData]


class UserModerationData(_Model):
    """A user after a disqualification or reinstatement, and the act."""

    user_id: str
    disqualified: bool
    act: ActData


class UserScoreData(_Model):
    user_id: str
    username: str
    score: int
    rank: int | None
    percentile: float | None


class VelocityData(_Model):
    """The velocity rule (docs/operators.md has the formula): the user's score of the action in the
    last `windowS` seconds against the `windows` windows before it, once `minSamples` of them had
    any."""

    window_s: int
    windows: int
    min_samples: int
    z: float


class WipedData(_Model):
    """The board period after a wipe: how many entries it lost."""

    board: str
    period: str
    removed: int
    act: ActData
