"""Request and response shapes, declared once: they validate input and feed the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from ..config import ID_PATTERN
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
Score = Annotated[int, Meta(ge=0)]
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
    expected_score: Score


class BoardEntry(_Model):
    rank: Rank
    user_id: str
    username: str
    score: Score
    last_updated: Timestamp


class TopData(_Model):
    leaderboard: list[BoardEntry]
    updated_at: Timestamp


class UpdateData(_Model):
    user_id: str
    previous_score: Score
    new_score: Score
    score_increment: Score
    rank: Rank
    leaderboard: list[BoardEntry]


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


LIVE_TOKEN_HELP = f"A user JWT, checked before anything is sent (invalid: closed with {CLOSE_UNAUTHORIZED})"


class LiveQuery(_Model):
    token: Annotated[str, Meta(description=LIVE_TOKEN_HELP)] | msgspec.UnsetType = msgspec.UNSET


class StaticPath(_Model):
    filename: Annotated[str, Meta(min_length=1, description="A file of the static folder", examples=["board.js"])]
