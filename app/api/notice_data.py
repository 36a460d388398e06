"""The shapes of kept notices: who passed a user on which board (`GET /api/v1/users/me/notifications`)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from .fields import Rank, Score, Timestamp, _Model


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
