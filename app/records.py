"""The domain's records, declared once: what is granted, claimed, awarded, stored and ranked."""

from __future__ import annotations

import msgspec


class TokenGrant(msgspec.Struct, frozen=True, kw_only=True):
    """An issued action token, recorded so that it can be consumed exactly once."""

    nonce: str
    token_hash: str
    user_id: str
    username: str
    action_type: str
    action_id: str
    score_increment: int
    issued_ms: int
    expires_ms: int


class AwardClaim(msgspec.Struct, frozen=True, kw_only=True):
    """A request to consume a token and award its score, checked inside the transaction."""

    nonce: str
    user_id: str
    username: str
    action_type: str
    action_id: str
    min_elapsed_ms: int  # the catalog's minimum for `action_type`, which the recorded grant must have
    now_ms: int


class Award(msgspec.Struct, frozen=True, kw_only=True):
    """A committed award. `seq` orders awards: who reached a score first."""

    user_id: str
    username: str
    action_type: str
    action_id: str
    previous_score: int
    new_score: int
    score_increment: int
    seq: int
    awarded_ms: int


class UserRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A user row; `seq` is None until the first award puts the user on the board."""

    user_id: str
    username: str
    score: int
    seq: int | None
    updated_ms: int | None


class BoardPeriod(msgspec.Struct, frozen=True, kw_only=True):
    """One period of one board: what a rank index holds. `ascending`: lower is better."""

    board: str
    period: str
    ascending: bool = False


class Standing(msgspec.Struct, frozen=True, kw_only=True):
    """A user on a board. `seq` is the write that reached the current value (who reached it first);
    `subscore` breaks ties the board's way (absent counts as 0); `metadata` is a JSON object's text."""

    user_id: str
    username: str
    score: int
    seq: int
    updated_ms: int
    subscore: int | None = None
    metadata: str | None = None

    @classmethod
    def of(cls, award: Award) -> Standing:
        """Where a committed award puts its user."""
        return cls(
            user_id=award.user_id,
            username=award.username,
            score=award.new_score,
            seq=award.seq,
            updated_ms=award.awarded_ms,
        )


def on_board(records: list[UserRecord]) -> list[Standing]:
    """The users of these rows who are on the board (have an award)."""
    return [
        Standing(user_id=r.user_id, username=r.username, score=r.score, seq=r.seq, updated_ms=r.updated_ms or 0)
        for r in records
        if r.seq is not None
    ]


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """A user's place: standing, 1-based rank, and how many users are on the board."""

    standing: Standing
    rank: int
    size: int


class AwardEvent(msgspec.Struct, frozen=True, kw_only=True, tag="award"):
    """A committed award with the ranks it moved between: what the live side is told."""

    award: Award
    previous_rank: int | None
    rank: int
