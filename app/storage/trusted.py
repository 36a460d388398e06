"""Trusted writes: a game server's score on a board (`best`, `set` or `incr`, with subscore and
metadata), exactly once per Idempotency-Key, kept in the board's history with the service's name.
The statements, written once for SQLite and PostgreSQL, and the steps that run them."""

from __future__ import annotations

import msgspec

from ..errors import BoardNotFound, Disqualified, IdempotencyConflict, ValidationFailed
from ..records import EntryChange, ScoreWrite, WriteOutcome
from .operations import LOCK_USER, MAX_VALUE
from .schema import Dialect
from .steps import Row, Steps

ENSURE_USER = (
    "INSERT INTO users (id, username, created_at, updated_at) VALUES ($1, $1, $2, $2) ON CONFLICT (id) DO NOTHING"
)
# Shared: writes go on side by side, and a retirement waits for those under way; one that begins
# after the retirement committed finds the board retired.
BOARD_OPEN = "SELECT 1 FROM boards WHERE id = $1 AND retired_at IS NULL{share_lock}"
ENTRY = "SELECT score, subscore, seq, metadata FROM board_entries WHERE board = $1 AND period = $2 AND user_id = $3"
RECORD_CHANGE = (
    "INSERT INTO board_history (board, period, user_id, service, value, subscore, previous_score, new_score, "
    "metadata, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id"
)
PUT_ENTRY = (
    "INSERT INTO board_entries (board, period, user_id, score, subscore, seq, updated_at, metadata) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (board, period, user_id) DO UPDATE SET "
    "score = excluded.score, subscore = excluded.subscore, seq = excluded.seq, updated_at = excluded.updated_at, "
    "metadata = excluded.metadata"
)
CLAIM_KEY = (
    "INSERT INTO idempotency_keys (service, key, request_hash, outcome, created_at) VALUES ($1, $2, $3, '', $4) "
    "ON CONFLICT (service, key) DO NOTHING RETURNING 1"
)
KEPT_KEY = "SELECT request_hash, outcome, answer FROM idempotency_keys WHERE service = $1 AND key = $2"
SET_KEY_OUTCOME = "UPDATE idempotency_keys SET outcome = $1 WHERE service = $2 AND key = $3"
SET_KEY_ANSWER = "UPDATE idempotency_keys SET answer = $1 WHERE service = $2 AND key = $3"
PURGE_KEYS = "DELETE FROM idempotency_keys WHERE created_at < $1"


def better(ascending: bool, score: int, subscore: int | None, than: tuple[int, int | None]) -> bool:
    """Whether (score, subscore) ranks ahead of `than` on a board of this order (absent subscore: 0)."""
    mine, theirs = (score, subscore or 0), (than[0], than[1] or 0)
    return mine < theirs if ascending else mine > theirs


def apply_operator(write: ScoreWrite, entry: Row) -> tuple[int, int | None, str | None, bool]:
    """The entry a trusted write leaves (score, subscore, metadata) and whether it changed, from
    the entry held (score, subscore, seq, metadata) or None."""
    if entry is None:
        return write.score, write.subscore, write.metadata, True
    score, subscore, _, metadata = entry
    if write.operator == "incr":
        new_subscore = write.subscore if write.subscore is not None else subscore
        new_metadata = write.metadata if write.metadata is not None else metadata
        return score + write.score, new_subscore, new_metadata, write.score != 0
    if write.operator == "best" and not better(write.where.ascending, write.score, write.subscore, (score, subscore)):
        return score, subscore, metadata, False
    changed = (write.score, write.subscore, write.metadata) != (score, subscore, metadata)
    if not changed:  # the same value again: whoever reached it first keeps it
        return score, subscore, metadata, False
    return write.score, write.subscore, write.metadata, True


_outcome = msgspec.json.Encoder()
_outcome_of = msgspec.json.Decoder(WriteOutcome)


def encode_outcome(outcome: WriteOutcome) -> str:
    """The outcome kept with an Idempotency-Key, as text."""
    return _outcome.encode(outcome).decode()


def decode_outcome(text: str) -> WriteOutcome:
    """An outcome kept with an Idempotency-Key."""
    return _outcome_of.decode(text)


class Statements:
    """The trusted writes' statements in one dialect, and their steps."""

    def __init__(self, dialect: Dialect) -> None:
        sql = dialect.sql
        self.ensure_user, self.lock_user = sql(ENSURE_USER), sql(LOCK_USER)
        self.board_open, self.entry = sql(BOARD_OPEN), sql(ENTRY)
        self.record_change = sql(RECORD_CHANGE)
        self.put_entry = sql(PUT_ENTRY)
        self.claim_key = sql(CLAIM_KEY)
        self.kept_key = sql(KEPT_KEY)
        self.set_key_outcome = sql(SET_KEY_OUTCOME)
        self.set_key_answer = sql(SET_KEY_ANSWER)
        self.purge_keys = sql(PURGE_KEYS)

    def write_score(self, write: ScoreWrite) -> Steps[WriteOutcome]:
        """A trusted server's write: claim its Idempotency-Key (a key used before answers what it
        answered, or IDEMPOTENCY_CONFLICT for another request), apply the board's operator, keep
        the write in the history with the service's name. Its one refusal after a write (a sum
        beyond ±2^53) relies on the store undoing the write: SQLite runs it in a savepoint."""
        now, where = write.now_ms, write.where
        if (yield self.board_open, (where.board,)) is None:  # retired since this process last looked
            raise BoardNotFound(details={"board": where.board})
        if (yield self.claim_key, (write.service, write.key, write.request_hash, now)) is None:
            kept = yield self.kept_key, (write.service, write.key)
            assert kept is not None  # the claim found it (a concurrent claim waits for its commit)
            request_hash, outcome, answer = kept
            if request_hash != write.request_hash:
                raise IdempotencyConflict(details={"idempotencyKey": write.key})
            return msgspec.structs.replace(decode_outcome(outcome), answer=answer, replayed=True)
        user = None
        while user is None:
            yield self.ensure_user, (write.user_id, now)
            # Locked where rows are: one write of a user at a time. None: an erasure committed
            # between the two (PostgreSQL), and the user is created anew, as any unknown one is.
            user = yield self.lock_user, (write.user_id,)
        if user[1] is not None:  # the key's claim is undone with the rest
            raise Disqualified(details={"userId": write.user_id})
        entry = yield self.entry, (where.board, where.period, write.user_id)
        score, subscore, metadata, changed = apply_operator(write, entry)
        if not -MAX_VALUE <= score <= MAX_VALUE:  # an incr board's sum: refused, written nothing (rolled back)
            raise ValidationFailed(
                "The board's value would leave the range of ±2^53", details={"field": "score", "newScore": score}
            )
        history = yield (
            self.record_change,
            (
                where.board,
                where.period,
                write.user_id,
                write.service,
                write.score,
                write.subscore,
                None if entry is None else entry[0],
                score,
                write.metadata,
                now,
            ),
        )
        assert history is not None
        seq = history[0] if changed or entry is None else entry[2]
        if changed:
            yield self.put_entry, (where.board, where.period, write.user_id, score, subscore, seq, now, metadata)
        outcome = WriteOutcome(
            user_id=write.user_id,
            username=user[0],
            change=EntryChange(
                where=where,
                previous_score=None if entry is None else entry[0],
                new_score=score,
                subscore=subscore,
                metadata=metadata,
                seq=seq,
                changed=changed,
            ),
        )
        yield self.set_key_outcome, (encode_outcome(outcome), write.service, write.key)
        return outcome

    def keep_answer(self, service: str, key: str, answer: str) -> Steps[None]:
        """Keep the first answer of a trusted write, for its retries."""
        yield self.set_key_answer, (answer, service, key)
