"""The shapes of a user's personal data: `GET /api/v1/users/me/export` and an erasure's answer."""

from __future__ import annotations

from typing import Any

from .fields import Score, Timestamp, _Model
from .held_data import HoldingRules
from .moderation_data import ActData
from .notice_data import Notification


class ExportedUser(_Model):
    user_id: str
    username: str
    created_at: Timestamp
    updated_at: Timestamp


class ExportedEntry(_Model):
    """The user's entry on one period of one board."""

    board: str
    period: str
    score: Score
    subscore: int | None
    metadata: dict[str, Any] | None
    updated_at: Timestamp


class ExportedAward(_Model):
    """An award the user completed (its score on the first of its boards)."""

    id: int
    action_type: str
    action_id: str
    score_change: int
    previous_score: Score
    new_score: Score
    created_at: Timestamp


class ExportedChange(_Model):
    """A change of one of the user's entries: by an award (`awardId`) or a trusted server (`service`)."""

    id: int
    board: str
    period: str
    award_id: int | None
    service: str | None
    value: int
    subscore: int | None
    previous_score: Score | None
    new_score: Score
    metadata: dict[str, Any] | None
    created_at: Timestamp


class ExportedToken(_Model):
    """An action token issued to the user (`usedAt` null while unspent)."""

    action_type: str
    action_id: str
    score_increment: int
    issued_at: Timestamp
    expires_at: Timestamp
    used_at: Timestamp | None


class ExportedAttestation(_Model):
    """A trusted server's attestation of one of the user's actions, not spent yet."""

    action_id: str
    service: str
    created_at: Timestamp


class ExportedHeld(_Model):
    """One of the user's awards a cheat rule held, and its operator's decision once made."""

    id: int
    action_type: str
    action_id: str
    score: int
    status: str
    reason: str | None
    created_at: Timestamp
    decided_at: Timestamp | None
    rules: HoldingRules


class ExportedDecision(_Model):
    """A held award of another user's that the user decided as an operator."""

    held_id: int
    status: str
    reason: str | None
    decided_at: Timestamp | None


class ExportedCompletion(_Model):
    """An action the user completed whose award the history no longer keeps (retention): it
    cannot be completed again."""

    action_id: str
    completed_at: Timestamp


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


class ErasedData(_Model):
    """An erasure happened: the user is on no board and no row holds their id or name."""

    erased: bool
