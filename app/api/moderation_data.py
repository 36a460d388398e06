"""The shapes of the operators' moderation routes: disqualify, reinstate, adjust, remove an entry,
wipe a period, and a user's history with the acts on them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta

from .fields import BoardId, Id, PeriodSpec, Reason, Score, Timestamp, Value, _Model

ActId = Annotated[int, Meta(ge=1, description="The act's number in the moderation record")]
Action = Literal["disqualify", "reinstate", "adjust", "remove", "wipe", "create_board", "change_board", "retire_board"]


class ModerationRequest(_Model):
    """Why an operator acts."""

    reason: Reason


class AdjustRequest(_Model):
    """A signed correction of a user's entry: `delta` is added to it (a negative one takes off)."""

    delta: Annotated[
        Value,
        Meta(
            description="Added to the entry's score (±2^53, not 0)",
            examples=[-250],
            extra_json_schema={"not": {"const": 0}},
        ),
    ]
    reason: Reason
    period: Annotated[PeriodSpec, Meta(description="The period corrected (default: the current one)")] = "current"

    def __post_init__(self) -> None:
        # A correction of nothing would still count as reaching the score anew and move the user
        # behind those tied with them.
        if self.delta == 0:
            raise ValueError("`delta` must not be 0: there is nothing to correct - at `$.delta`")


class ActData(_Model):
    """One moderation act as the audit record keeps it. `amount`: an adjustment's delta, a removed
    entry's score, or how many entries a wipe removed; `details`: the entries removed."""

    id: ActId
    action: Action
    operator: Annotated[str, Meta(description="The operator's user id")]
    reason: str
    user_id: str | None
    board: str | None
    period: str | None
    amount: int | None
    details: dict[str, Any] | None
    created_at: Timestamp


class UserModerationData(_Model):
    """A user after a disqualification or reinstatement, and the act."""

    user_id: str
    disqualified: bool
    act: ActData


class AdjustedData(_Model):
    """The corrected entry: its score before (null: none) and after, and its rank now (null while the
    user is disqualified)."""

    board: str
    period: str
    user_id: str
    previous_score: Score | None
    new_score: Score
    rank: Annotated[int, Meta(ge=1)] | None
    act: ActData


class RemovedData(_Model):
    """The entry taken off the board period: its score is the act's `amount`."""

    board: str
    period: str
    user_id: str
    removed_score: Score
    act: ActData


class WipedData(_Model):
    """The board period after a wipe: how many entries it lost."""

    board: str
    period: str
    removed: Annotated[int, Meta(ge=0)]
    act: ActData


ChangeKind = Literal["award", "trusted", "correction"]


class HistoryEntry(_Model):
    """One change of the user's entry on one board period, newest first: an award (`actionType`,
    `actionId`), a trusted server's write (`service`) or an operator's correction (`actId`)."""

    id: int
    kind: ChangeKind
    board: str
    period: str
    action_type: str | None
    action_id: str | None
    service: str | None
    act_id: int | None
    value: int
    subscore: int | None
    previous_score: Score | None
    new_score: Score
    created_at: Timestamp


class UserHistoryData(_Model):
    """A user's history for operators: changes newest first, one page (`nextAfter`, the `after` of the
    next page; null: no more), the acts on them (newest first, at most 100) and whether they are
    disqualified."""

    user_id: str
    username: str
    disqualified: bool
    disqualified_at: Timestamp | None
    history: list[HistoryEntry]
    next_after: int | None
    acts: list[ActData]


class HistoryQuery(_Model):
    after: Annotated[
        int, Meta(ge=0, le=2**63 - 1, description="Only changes numbered below this id (0: from the newest)")
    ] = 0
    limit: Annotated[int, Meta(ge=1, le=100, description="At most this many changes")] = 50


class ModeratedUserPath(_Model):
    user_id: Annotated[Id, Meta(examples=["mallory"])]


class AdjustPath(_Model):
    board: BoardId
    user_id: Annotated[Id, Meta(examples=["mallory"])]


class EntryPath(_Model):
    board: BoardId
    period: PeriodSpec
    user_id: Annotated[Id, Meta(examples=["mallory"])]


class WipePath(_Model):
    board: BoardId
    period: Annotated[PeriodSpec, Meta(examples=["previous"])]
