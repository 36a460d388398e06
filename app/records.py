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
    """A request to consume a token and award its score on its boards (the first one's numbers
    are the award's own), checked inside the transaction."""

    nonce: str
    user_id: str
    username: str
    action_type: str
    action_id: str
    min_elapsed_ms: int  # the catalog's minimum for `action_type`, which the recorded grant must have
    now_ms: int
    boards: tuple[BoardPeriod, ...]  # each an incr board, in the period current at `now_ms`
    ends_ms: int | None = None  # when the first of those periods ends: a transaction after it refuses the claim
    attest: bool = False  # the action needs a trusted server's attestation, which the award spends
    rules: HoldRules | None = None  # the action's cheat rules; None: never held
    backoff: Backoff | None = None  # repeat offenders' back-off; None: off


class Velocity(msgspec.Struct, frozen=True, kw_only=True):
    """The velocity rule: the score of the last `window_ms` against the `windows` windows before it."""

    window_ms: int
    windows: int
    min_samples: int
    z: float


class HoldRules(msgspec.Struct, frozen=True, kw_only=True):
    """An action's cheat rules, each checked inside the award's transaction; None: not set."""

    over_per_hour: int | None = None  # more than this in the rolling hour (held ones count)
    over: tuple[int, int] | None = None  # more than `count` in `window_ms` (held ones count)
    within_ms: int | None = None  # sooner than this after the user's previous completion
    max_score_per_hour: int | None = None  # the user's awards on any one of its boards in the hour
    velocity: Velocity | None = None


class Backoff(msgspec.Struct, frozen=True, kw_only=True):
    """Repeat offenders: from the 2nd held award in 24 h, updates within `base_ms * 2^(k-2)` (at
    most `max_ms`) of the last hold are refused."""

    base_ms: int
    max_ms: int


class BoardPeriod(msgspec.Struct, frozen=True, kw_only=True):
    """One period of one board: what a rank index holds. `ascending`: lower is better."""

    board: str
    period: str
    ascending: bool = False


class EntryChange(msgspec.Struct, frozen=True, kw_only=True):
    """What one write did to one user's entry on one board period. `seq` is the history row that
    reached the entry's value; `changed` is False when the stored entry stayed as it was."""

    where: BoardPeriod
    previous_score: int | None  # None: the user's first entry in this period
    new_score: int
    subscore: int | None
    metadata: str | None
    seq: int
    changed: bool = True


class Award(msgspec.Struct, frozen=True, kw_only=True):
    """A committed award: its entry change on each of its boards, the first board's numbers at the
    top level; or one held for an operator (`held`)."""

    user_id: str
    username: str
    action_type: str
    action_id: str
    previous_score: int
    new_score: int
    score_increment: int
    awarded_ms: int
    changes: list[EntryChange]
    held: int | None = None  # held for an operator under this id (no changes, scores 0) until approved
    held_by: tuple[str, ...] = ()  # the rules that held it


class HeldAward(msgspec.Struct, frozen=True, kw_only=True):
    """An award held for an operator: token spent, action completed, on no board until approved.
    `boards` are the board periods it would have landed on when it was held."""

    id: int
    award_id: int  # its score_history row
    user_id: str
    action_type: str
    action_id: str
    score: int
    boards: tuple[BoardPeriod, ...]
    created_ms: int
    status: str = "pending"  # pending | approved | rejected
    decided_by: str | None = None
    reason: str | None = None
    decided_ms: int | None = None
    rules: tuple[str, ...] = ()  # the cheat rules that held it


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """An operator's decision on a held award. An approval lands it on `boards` (each in the period
    chosen for it), at `now_ms`."""

    held_id: int
    approve: bool
    operator: str
    reason: str
    now_ms: int
    boards: tuple[BoardPeriod, ...] = ()


class ScoreWrite(msgspec.Struct, frozen=True, kw_only=True):
    """A trusted server's score for one user on one board period, applied by the board's operator.
    `request_hash` identifies the request its Idempotency-Key was first used with."""

    service: str
    key: str
    request_hash: str
    where: BoardPeriod
    operator: str  # incr | best | set
    user_id: str
    score: int
    subscore: int | None
    metadata: str | None
    now_ms: int
    ends_ms: int | None = None  # when `where`'s period ends: a transaction after it refuses the write


class WriteOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """A committed trusted write, or the first answer of its key (`answer`, JSON) on a retry."""

    user_id: str
    username: str
    change: EntryChange
    answer: str | None = None
    replayed: bool = False


class UserRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A user row."""

    user_id: str
    username: str


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
    def of(cls, user_id: str, username: str, change: EntryChange, at_ms: int) -> Standing:
        """Where a committed change puts its user."""
        return cls(
            user_id=user_id,
            username=username,
            score=change.new_score,
            seq=change.seq,
            updated_ms=at_ms,
            subscore=change.subscore,
            metadata=change.metadata,
        )


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """A user's place: standing, 1-based rank, and how many users are on the board."""

    standing: Standing
    rank: int
    size: int


class Move(msgspec.Struct, frozen=True, kw_only=True):
    """One entry change and the ranks it moved its user between."""

    change: EntryChange
    previous_rank: int | None
    rank: int


class AwardEvent(msgspec.Struct, frozen=True, kw_only=True, tag="award"):
    """A committed award or trusted write with its moves, one per board: what the live side is told."""

    user_id: str
    username: str
    at_ms: int
    moves: list[Move]


class NoticeDraft(msgspec.Struct, frozen=True, kw_only=True):
    """A notice for one user, before the store numbers it: its type and its data (a JSON object's text)."""

    user_id: str
    type: str
    data: str


class Notice(msgspec.Struct, frozen=True, kw_only=True):
    """A kept notice: numbered by the store (`id`, the `after` of a replay), with when it was made."""

    id: int
    user_id: str
    type: str
    data: str
    created_ms: int


class Noticed(msgspec.Struct, frozen=True, kw_only=True, tag="notices"):
    """Notices kept by one process, for every process to send to its connections of their users."""

    notices: list[Notice]


class OperatorAct(msgspec.Struct, frozen=True, kw_only=True):
    """Who made an operator's change to the board catalog, and why (empty when not given)."""

    operator: str
    reason: str


class ModerationAct(msgspec.Struct, frozen=True, kw_only=True):
    """An operator's action, as the moderation table keeps it: `action` is disqualify, reinstate,
    adjust, remove or wipe; `amount` an adjustment's delta, a removed entry's score or how many
    entries a wipe removed; `details` JSON of what was removed."""

    action: str
    operator: str
    reason: str
    created_ms: int
    user_id: str | None = None
    board: str | None = None
    period: str | None = None
    amount: int | None = None
    details: str | None = None
    id: int = 0


class Corrected(msgspec.Struct, frozen=True, kw_only=True):
    """What an operator's correction of one user's entry did: the entry change (an adjustment) or
    the entry removed (`change` None), the act as kept, and whether the user is disqualified (then
    no rank index shows the entry)."""

    act: ModerationAct
    username: str
    disqualified: bool
    change: EntryChange | None = None


class Removal(msgspec.Struct, frozen=True, kw_only=True):
    """What an operator's removal of entries from one board period did: the act as kept and each
    entry taken off as (user id, seq of the write that made it)."""

    act: ModerationAct
    entries: list[tuple[str, int]]


class HistoryRow(msgspec.Struct, frozen=True, kw_only=True):
    """One change of a user's entry (board_history), with what made it: an award (its action), a
    trusted server, or an operator's correction (`moderation_id`)."""

    id: int
    board: str
    period: str
    award_id: int | None
    action_type: str | None
    action_id: str | None
    service: str | None
    moderation_id: int | None
    value: int
    subscore: int | None
    previous_score: int | None
    new_score: int
    created_ms: int


class UserHistory(msgspec.Struct, frozen=True, kw_only=True):
    """A user's changes (newest first, one page), the moderation acts on them (newest first) and
    whether they are disqualified now."""

    user_id: str
    username: str
    disqualified_ms: int | None
    changes: list[HistoryRow]
    acts: list[ModerationAct]
