"""The store's writes and reads, written once for SQLite and PostgreSQL: the statements (rendered
per dialect) and the steps that run them. A write is a generator that yields each query and is
sent the query's first row (or None), so one algorithm serves the SQLite writer, which runs
statements synchronously on the loop, and asyncpg, which awaits them."""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any, TypeVar

from ..errors import (
    ActionAlreadyCompleted,
    ActionTooFast,
    ApiError,
    InvalidToken,
    RateLimited,
    TokenAlreadyUsed,
    TokenExpired,
)
from ..records import Award, AwardClaim, TokenGrant, UserRecord
from .schema import Dialect

T = TypeVar("T")
Row = tuple[Any, ...] | None
Query = tuple[str, tuple[Any, ...]]
Steps = Generator[Query, Row, T]  # yields queries, is sent each one's first row, returns the answer

# Usernames are NOT NULL, so `<>` says what SQLite's IS NOT and PostgreSQL's IS DISTINCT FROM would.
UPSERT_USER = (
    "INSERT INTO users (id, username, created_at, updated_at) VALUES ($1, $2, $3, $3) "
    "ON CONFLICT (id) DO UPDATE SET username = excluded.username, updated_at = excluded.updated_at "
    "WHERE users.username <> excluded.username"
)
ACTION_DONE = "SELECT 1 FROM score_history WHERE user_id = $1 AND action_id = $2"
UNUSED_TOKENS = (
    "SELECT COUNT(*), MIN(expires_at) FROM action_tokens WHERE user_id = $1 AND used_at IS NULL AND expires_at > $2"
)
RECORD_GRANT = (
    "INSERT INTO action_tokens (nonce, token_hash, user_id, action_type, action_id, score_increment, "
    "issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)
CONSUME = (
    "UPDATE action_tokens SET used_at = $1 WHERE nonce = $2 AND user_id = $3 AND action_type = $4 "
    "AND action_id = $5 AND used_at IS NULL AND issued_at <= $6 AND expires_at > $1 "
    "RETURNING score_increment, token_hash"
)
GRANT_ROW = "SELECT user_id, action_type, action_id, used_at, expires_at FROM action_tokens WHERE nonce = $1"
# The score is read (and, where rows are locked, locked) by the insert that records it: a
# conflict on the token or on (user_id, action_id) inserts nothing rather than failing.
RECORD_AWARD = (
    "INSERT INTO score_history (user_id, action_type, action_id, score_change, previous_score, "
    "new_score, token_nonce, action_token_hash, created_at) "
    "SELECT id, $1, $2, $3, score, score + $3, $4, $5, $6 FROM users WHERE id = $7{row_lock} "
    "ON CONFLICT DO NOTHING RETURNING id, previous_score"
)
RELEASE = "UPDATE action_tokens SET used_at = NULL WHERE nonce = $1"
NONCE_RECORDED = "SELECT 1 FROM score_history WHERE token_nonce = $1"
USER_KNOWN = "SELECT 1 FROM users WHERE id = $1"
RAISE_SCORE = (
    "UPDATE users SET score = $1, score_seq = $2, last_score_update = $3, updated_at = $3, username = $4 WHERE id = $5"
)
USER = "SELECT id, username, score, score_seq, last_score_update FROM users WHERE id = $1"
STANDINGS = "SELECT id, username, score, score_seq, last_score_update FROM users WHERE score_seq IS NOT NULL"


def check_unused(held: int, first_expiry_ms: int | None, *, now_ms: int, max_unused: int | None) -> None:
    """Refuse (429) a user who already holds `max_unused` unexpired unused tokens; Retry-After is
    when the first of them expires."""
    if max_unused is not None and held >= max_unused:
        wait_ms = (first_expiry_ms or now_ms) - now_ms
        raise RateLimited(max(1, math.ceil(wait_ms / 1000)), "Too many unused action tokens for this user")


def refusal(claim: AwardClaim, token: Row) -> ApiError:
    """Why a token's conditional update matched nothing, from its row (user_id, action_type,
    action_id, used_at, expires_at) or None when it is not recorded."""
    if token is None:
        return InvalidToken("Action token is not known to this server")
    user_id, action_type, action_id, used_at, expires_at = token
    if (user_id, action_type, action_id) != (claim.user_id, claim.action_type, claim.action_id):
        return InvalidToken("Action token is not known to this server")
    if used_at is not None:
        return TokenAlreadyUsed()
    if expires_at <= claim.now_ms:
        return TokenExpired()
    return ActionTooFast(details={"minSeconds": claim.min_elapsed_ms / 1000})


def user_record(row: Any) -> UserRecord:
    """A row of USER or STANDINGS (a tuple, or the driver's own record)."""
    return UserRecord(user_id=row[0], username=row[1], score=row[2], seq=row[3], updated_ms=row[4])


class Operations:
    """The statements in one dialect, and the steps of each write.

    A refusal raises an ApiError having written nothing: the SQLite writer shares one transaction
    among a batch's writes, so refusals come before a write's first statement that changes
    anything, or undo it (PostgreSQL rolls the transaction back as well)."""

    def __init__(self, dialect: Dialect) -> None:
        self.row_locks = dialect.row_locks
        sql = dialect.sql
        self.upsert_user = sql(UPSERT_USER)
        self.action_done = sql(ACTION_DONE)
        self.unused_tokens = sql(UNUSED_TOKENS)
        self.record_grant = sql(RECORD_GRANT)
        self.consume = sql(CONSUME)
        self.grant_row = sql(GRANT_ROW)
        self.record_award = sql(RECORD_AWARD)
        self.release = sql(RELEASE)
        self.nonce_recorded = sql(NONCE_RECORDED)
        self.user_known = sql(USER_KNOWN)
        self.raise_score = sql(RAISE_SCORE)
        self.user = sql(USER)
        self.standings = sql(STANDINGS)

    def grant(self, grant: TokenGrant, max_unused: int | None) -> Steps[None]:
        """Record an issued token (creating or renaming its user); refuse an action the user
        already completed, and a user who holds `max_unused` unexpired unused tokens."""
        upsert = (self.upsert_user, (grant.user_id, grant.username, grant.issued_ms))
        if self.row_locks:
            # The upsert locks the user's row until commit, updated or not (ON CONFLICT DO UPDATE
            # locks the conflicting row; a new row blocks other inserts of its id): one grant of a
            # user at a time, so the count below cannot be overtaken. A refusal rolls it back.
            yield upsert
        if (yield self.action_done, (grant.user_id, grant.action_id)) is not None:
            raise ActionAlreadyCompleted()
        if max_unused is not None:
            unused = yield self.unused_tokens, (grant.user_id, grant.issued_ms)
            assert unused is not None  # an aggregate answers one row
            check_unused(unused[0], unused[1], now_ms=grant.issued_ms, max_unused=max_unused)
        if not self.row_locks:  # the whole database is locked already; a refusal wrote nothing
            yield upsert
        yield (
            self.record_grant,
            (
                grant.nonce,
                grant.token_hash,
                grant.user_id,
                grant.action_type,
                grant.action_id,
                grant.score_increment,
                grant.issued_ms,
                grant.expires_ms,
            ),
        )

    def award(self, claim: AwardClaim) -> Steps[Award]:
        """Consume the token, record the history row, raise the score: three statements, each
        answering what the next needs (RETURNING). The slow path, a refusal, says why."""
        now = claim.now_ms
        token = yield (
            self.consume,
            (now, claim.nonce, claim.user_id, claim.action_type, claim.action_id, now - claim.min_elapsed_ms),
        )
        if token is None:
            raise refusal(claim, (yield self.grant_row, (claim.nonce,)))
        increment, token_hash = token
        history = yield (
            self.record_award,
            (claim.action_type, claim.action_id, increment, claim.nonce, token_hash, now, claim.user_id),
        )
        if history is None:  # a replay or a repeated action: undo the consumption, then say which
            yield self.release, (claim.nonce,)
            if (yield self.nonce_recorded, (claim.nonce,)) is not None:
                raise TokenAlreadyUsed()
            if (yield self.user_known, (claim.user_id,)) is None:
                raise InvalidToken("Action token is not known to this server")  # its user row comes with it
            raise ActionAlreadyCompleted()
        seq, previous = history
        yield self.raise_score, (previous + increment, seq, now, claim.username, claim.user_id)
        return Award(
            user_id=claim.user_id,
            username=claim.username,
            action_type=claim.action_type,
            action_id=claim.action_id,
            previous_score=previous,
            new_score=previous + increment,
            score_increment=increment,
            seq=seq,
            awarded_ms=now,
        )
