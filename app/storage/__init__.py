"""Storage: the system of record behind one narrow interface. One schema (schema.py) and one set
of operations (operations.py, with the award's statements in awarding.py, trusted writes in
trusted.py, the board catalog in catalog.py, moderation, personal data, rules and the audit chain
beside them) serve both backends, sqlite.py (group-committed by group_commit.py) and postgres.py."""

from __future__ import annotations

from typing import Protocol

from ..metrics.tally import Histogram
from ..records import (
    Award,
    AwardClaim,
    BoardPeriod,
    Corrected,
    Decision,
    HeldAward,
    ModerationAct,
    Notice,
    NoticeDraft,
    OperatorAct,
    Removal,
    ScoreWrite,
    Standing,
    TokenGrant,
    UserHistory,
    UserRecord,
    WriteOutcome,
)
from .moderation import Places
from .personal import Kept
from .retention import Swept


class StorageUnusable(Exception):
    """The database cannot be opened at start (a file that is not SQLite's, a folder not writable,
    a PostgreSQL that refuses or has no such database): one line saying why, for run.py to print."""


class Store(Protocol):
    """The system of record. Every write is one transaction; awards are exactly-once."""

    round_trips: Histogram  # seconds of each transaction (SQLite: each group commit), for the metrics
    most_sealed: int  # rows one seal may take when the sealer is behind (bounded by the loop time it holds)

    def pool_usage(self) -> tuple[int, int] | None:
        """(connections in use, the pool's size), or None for a store without a pool."""

    async def open(self) -> None:
        """Connect and apply migrations."""

    async def close(self) -> None:
        """Flush pending writes and disconnect; safe to call twice."""

    async def ping(self) -> None:
        """Raise if the store cannot be reached."""

    async def grant(self, grant: TokenGrant, *, max_unused: int | None = None) -> None:
        """Record an issued token; refuse an action the user already completed, and a user who
        already holds `max_unused` unexpired unused tokens (checked in the same transaction)."""

    async def award(self, claim: AwardClaim) -> Award:
        """Consume the token and add its score on each of its boards in one transaction, or raise a
        domain error having changed nothing; over its hourly limit, hold it instead (`Award.held`)."""

    async def held(self, *, status: str, after: int, limit: int) -> list[HeldAward]:
        """Held awards of a status numbered after `after`, oldest first, at most `limit`."""

    async def held_award(self, held_id: int) -> HeldAward | None:
        """One held award, or None."""

    async def decide(self, decision: Decision) -> tuple[HeldAward, Award | None]:
        """Approve (landing it on the decision's boards) or reject a pending held award, once, in one
        transaction; the held award as decided, and the approval's award. NOT_FOUND or
        ALREADY_DECIDED having changed nothing."""

    async def write_score(self, write: ScoreWrite) -> WriteOutcome:
        """Apply a trusted server's write under its Idempotency-Key in one transaction."""

    async def keep_answer(self, service: str, key: str, answer: str) -> None:
        """Keep the first answer of a trusted write, for its retries."""

    async def attest(self, user_id: str, action_id: str, service: str, now_ms: int) -> int:
        """Record a trusted server's attestation of a user's action, unless one is held (the first
        stays); when the one held was made (ms)."""

    async def user(self, user_id: str) -> UserRecord | None:
        """One user's row."""

    async def standings(self, board: str, period: str) -> list[Standing]:
        """Every user on one period of one board, for rebuilding its rank index."""

    async def boards(self) -> list[tuple[str, str]]:
        """(id, settings as JSON) of every board in use, oldest first."""

    async def retired_boards(self) -> list[tuple[str, str, int]]:
        """(id, settings as JSON, when it was retired in ms) of every retired board, oldest first."""

    async def declare_boards(self, declared: dict[str, str]) -> list[str]:
        """Apply the configuration's boards (id -> settings as JSON); the ids of those whose
        settings it replaced. See Operations.declare."""

    async def create_board(self, board_id: str, settings: str, by: OperatorAct) -> None:
        """Add a board, and record the act; BOARD_EXISTS if the id is or was in use."""

    async def change_board(self, board_id: str, settings: str, by: OperatorAct) -> None:
        """Replace a board's settings, and record the act; BOARD_NOT_FOUND for an unknown or retired one."""

    async def retire_board(self, board_id: str, by: OperatorAct) -> None:
        """Retire a board, and record the act; BOARD_NOT_FOUND for an unknown or retired one."""

    async def purge_keys(self, created_before_ms: int) -> int:
        """Forget Idempotency-Keys first used before this time; return how many."""

    async def purge_attestations(self, created_before_ms: int) -> int:
        """Forget attestations made before this time that no award spent; return how many."""

    async def purge_tokens(self, expired_before_ms: int) -> int:
        """Delete token rows that expired before the given time; return how many."""

    async def add_notices(self, drafts: list[NoticeDraft], *, now_ms: int) -> list[Notice]:
        """Keep notices, numbered in order and dated `now_ms`."""

    async def trim_notices(self, user_ids: list[str], *, keep: int) -> int:
        """Delete these users' notices beyond their newest `keep`; how many."""

    async def notices(self, user_id: str, *, after: int, since_ms: int, keep: int) -> list[Notice]:
        """A user's newest `keep` notices made since `since_ms`, those numbered after `after`, oldest first."""

    async def purge_notices(self, created_before_ms: int) -> int:
        """Delete notices made before this time; return how many."""

    async def personal_data(self, user_id: str) -> Kept | None:
        """Every row kept about a user (storage/personal.py), or None for an unknown user."""

    async def sweep_changes(self, cursor: int, before_ms: int) -> Swept:
        """Delete the board changes made before `before_ms` in one window of ids after `cursor`,
        but those an entry points at (storage/retention.py)."""

    async def sweep_awards(self, cursor: int, before_ms: int) -> Swept:
        """Delete the awards made before `before_ms` in one window of ids after `cursor` that no
        change or held award refers to, keeping their (user, actionId) (storage/retention.py)."""

    async def erase(self, user_id: str, pseudonym: str, now_ms: int) -> list[tuple[str, str]]:
        """Erase a user under a pseudonym in one transaction (storage/personal.py); the (board,
        period) pairs they were on. USER_NOT_FOUND, having changed nothing, for an unknown user."""

    async def disqualify(self, act: ModerationAct) -> Places:
        """Disqualify `act.user_id` and keep the act, in one transaction; the act as kept and the
        (board, period) of every entry they have (kept in the database). USER_NOT_FOUND having changed nothing."""

    async def reinstate(self, act: ModerationAct) -> Places:
        """Reinstate `act.user_id` and keep the act, as `disqualify`."""

    async def adjust(self, act: ModerationAct, where: BoardPeriod, *, create: bool) -> Corrected:
        """Add `act.amount` to a user's entry with a correction row and keep the act, in one
        transaction (storage/moderation.py); refusals change nothing."""

    async def remove_entry(self, act: ModerationAct, where: BoardPeriod) -> Removal:
        """Take a user's entry off one board period and keep the act; NOT_FOUND without one."""

    async def wipe(self, act: ModerationAct, where: BoardPeriod) -> Removal:
        """Take every entry off one board period and keep the act, as kept."""

    async def standings_of(self, user_id: str) -> list[tuple[BoardPeriod, Standing]]:
        """Every entry of a user, unless disqualified (then none)."""

    async def disqualified(self) -> list[str]:
        """The ids of every disqualified user."""

    async def user_history(self, user_id: str, *, after: int, limit: int) -> UserHistory | None:
        """A user's changes numbered below `after` (0: from the newest), newest first, the acts on
        them and whether they are disqualified; None for an unknown user."""

    async def audit_head(self) -> tuple[int, str]:
        """The audit chain's head: its last entry's (seq, hash), or the checkpoint's, or (0, genesis)."""

    async def seal(self, limit: int) -> int:
        """Append up to `limit` rows queued for the audit chain to it (storage/chain.py), unless
        another process is sealing; how many were queued (`limit`: there may be more)."""
