"""The shapes of an award: the action catalog, initialize and update, the default board's top, a user's score."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from ..ranking import WATCHED_PLACES
from .fields import Id, Rank, Score, Timestamp, TokenText, Worth, _Model


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


class UserScoreData(_Model):
    user_id: str
    username: str
    score: Score
    rank: Rank | None
    percentile: float | None


class TopQuery(_Model):
    limit: Annotated[int, Meta(ge=1, le=WATCHED_PLACES)] = 10
