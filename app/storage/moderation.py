"""Moderation in the store: operators' acts on users and board periods, each recorded in the
moderation table in the transaction that does it, in the statements both databases share.

A user's acts lock their users row first, the row every award and trusted write of theirs locks:
a disqualification and an award in flight take turns, and the award reads the flag after it. A
wipe locks every user on the period the same way. Corrections are new board_history rows naming
their moderation row (an entry removed: value -score, new score 0), so that the sum of a user's
history on an incr board stays their score."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

import msgspec

from ..errors import NotFound, UserNotFound, ValidationFailed
from ..records import BoardPeriod, Corrected, EntryChange, HistoryRow, ModerationAct, Removal, Standing, UserHistory
from .operations import LOCK_USER, MAX_VALUE
from .rows import standing
from .schema import Dialect

T = TypeVar("T")
Rows = list[tuple[Any, ...]]
# Yields queries, is sent each one's rows (all of them), returns the answer.
Steps = Generator[tuple[str, tuple[Any, ...]], Rows, T]
Places = tuple[ModerationAct, list[tuple[str, str]]]  # an act, and the (board, period) of the user's entries

CORRECTIONS_PER_STATEMENT = 100  # a wipe's history rows, inserted this many per statement
ACTS_SHOWN = 100  # a user's history shows their newest acts, this many at most

SET_DISQUALIFIED = "UPDATE users SET disqualified_at = $1 WHERE id = $2"
RECORD_ACT = (
    "INSERT INTO moderation (action, operator, reason, user_id, board, period, amount, details, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id"
)
PLACES_OF = "SELECT board, period FROM board_entries WHERE user_id = $1 ORDER BY board, period"
ENTRY = "SELECT score, subscore, metadata FROM board_entries WHERE board = $1 AND period = $2 AND user_id = $3"
CORRECTION_COLUMNS = "(board, period, user_id, value, previous_score, new_score, created_at, moderation_id)"
CORRECT = f"INSERT INTO board_history {CORRECTION_COLUMNS} VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id"  # noqa: S608 - constants only
PUT_ENTRY = (
    "INSERT INTO board_entries (board, period, user_id, score, subscore, seq, updated_at, metadata) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (board, period, user_id) DO UPDATE SET "
    "score = excluded.score, seq = excluded.seq, updated_at = excluded.updated_at"
)
REMOVE_ENTRY = (
    "DELETE FROM board_entries WHERE board = $1 AND period = $2 AND user_id = $3 "
    "RETURNING user_id, score, subscore, seq, metadata"
)
# Ordered, so that two wipes lock in the same order; only the users rows (PostgreSQL: OF u).
LOCK_PERIOD = (
    "SELECT u.id FROM users u JOIN board_entries e ON e.user_id = u.id "
    "WHERE e.board = $1 AND e.period = $2 ORDER BY u.id{row_lock}"
)
WIPE = "DELETE FROM board_entries WHERE board = $1 AND period = $2 RETURNING user_id, score, subscore, seq, metadata"
DISQUALIFIED = "SELECT id FROM users WHERE disqualified_at IS NOT NULL"
STANDINGS_OF = (
    "SELECT e.board, e.period, e.user_id, u.username, e.score, e.seq, e.updated_at, e.subscore, e.metadata "
    "FROM board_entries e JOIN users u ON u.id = e.user_id WHERE e.user_id = $1 AND u.disqualified_at IS NULL"
)
USER = "SELECT id, username, disqualified_at FROM users WHERE id = $1"
# Newest first below `after`: the cheat rules' index of board_history by user serves the filter.
HISTORY = (
    "SELECT h.id, h.board, h.period, h.award_id, s.action_type, s.action_id, h.service, h.moderation_id, "
    "h.value, h.subscore, h.previous_score, h.new_score, h.created_at FROM board_history h "
    "LEFT JOIN score_history s ON s.id = h.award_id WHERE h.user_id = $1 AND h.id < $2 ORDER BY h.id DESC LIMIT $3"
)
ACT_COLUMNS = "id, action, operator, reason, user_id, board, period, amount, details, created_at"
ACTS_ON = f"SELECT {ACT_COLUMNS} FROM moderation WHERE user_id = $1 ORDER BY id DESC LIMIT {ACTS_SHOWN}"  # noqa: S608


class Statements:
    """The moderation statements in one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        sql = dialect.sql
        self.lock_user, self.set_disqualified, self.record_act = sql(LOCK_USER), sql(SET_DISQUALIFIED), sql(RECORD_ACT)
        self.places_of, self.entry, self.correct = sql(PLACES_OF), sql(ENTRY), sql(CORRECT)
        self.put_entry, self.remove_entry = sql(PUT_ENTRY), sql(REMOVE_ENTRY)
        self.lock_period = sql(LOCK_PERIOD) + (" OF u" if dialect.row_locks else "")
        self.wipe = sql(WIPE)
        self.disqualified, self.standings_of = sql(DISQUALIFIED), sql(STANDINGS_OF)
        self.user, self.history, self.acts_on = sql(USER), sql(HISTORY), sql(ACTS_ON)
        self._sql = sql

    def corrections(self, count: int) -> str:
        """An insert of `count` correction rows (8 parameters each, in CORRECTION_COLUMNS' order)."""
        rows = ", ".join("(" + ", ".join(f"${8 * i + j}" for j in range(1, 9)) + ")" for i in range(count))
        return self._sql(f"INSERT INTO board_history {CORRECTION_COLUMNS} VALUES {rows}")  # noqa: S608 - numbered parameters only


def _record(st: Statements, act: ModerationAct) -> Steps[ModerationAct]:
    """Keep an act; as kept, with its id."""
    args = (act.action, act.operator, act.reason, act.user_id, act.board, act.period, act.amount, act.details)
    [(act_id,)] = yield st.record_act, (*args, act.created_ms)
    return msgspec.structs.replace(act, id=act_id)


def _locked(st: Statements, user_id: str) -> Steps[tuple[str, bool]]:
    """Lock a user's row: (username, disqualified); USER_NOT_FOUND having written nothing."""
    rows = yield st.lock_user, (user_id,)
    if not rows:
        raise UserNotFound(details={"userId": user_id})
    return rows[0][0], rows[0][1] is not None


def set_disqualified(st: Statements, act: ModerationAct, *, disqualified: bool) -> Steps[Places]:
    """Disqualify (or reinstate) a user and keep the act; the act as kept and the (board, period)
    of every entry they have. Doing it again is harmless: kept again, the flag's first time stays."""
    assert act.user_id is not None
    _, already = yield from _locked(st, act.user_id)
    if disqualified != already:
        yield st.set_disqualified, (act.created_ms if disqualified else None, act.user_id)
    kept = yield from _record(st, act)
    return kept, [(board, period) for board, period in (yield st.places_of, (act.user_id,))]


def adjust(st: Statements, act: ModerationAct, where: BoardPeriod, *, create: bool) -> Steps[Corrected]:
    """Add `act.amount` to a user's entry with a correction row; the entry is the correction's
    (`seq`). A user without an entry gets one where `create` (incr boards), else NOT_FOUND; a sum
    beyond ±2^53 is VALIDATION_ERROR. Refusals come before the first write."""
    assert act.user_id is not None and act.amount is not None
    username, disqualified = yield from _locked(st, act.user_id)
    rows = yield st.entry, (where.board, where.period, act.user_id)
    if not rows and not create:
        raise NotFound("This user has no entry in this period", details={"board": where.board, "period": where.period})
    previous, subscore, metadata = rows[0] if rows else (None, None, None)
    score = (previous or 0) + act.amount
    if not -MAX_VALUE <= score <= MAX_VALUE:
        raise ValidationFailed(
            "The score would leave the range of ±2^53", details={"field": "delta", "newScore": score}
        )
    kept = yield from _record(st, act)
    head = (where.board, where.period, act.user_id)
    [(seq,)] = yield st.correct, (*head, act.amount, previous, score, act.created_ms, kept.id)
    yield st.put_entry, (*head, score, subscore, seq, act.created_ms, metadata)
    change = EntryChange(
        where=where, previous_score=previous, new_score=score, subscore=subscore, metadata=metadata, seq=seq
    )
    return Corrected(act=kept, username=username, disqualified=disqualified, change=change)


def remove(st: Statements, act: ModerationAct, where: BoardPeriod) -> Steps[Removal]:
    """Take a user's entry off one board period (NOT_FOUND when there is none, having written
    nothing); the act keeps the removed score (`amount`) and the entry (`details`)."""
    assert act.user_id is not None
    yield from _locked(st, act.user_id)
    removed = yield st.remove_entry, (where.board, where.period, act.user_id)
    if not removed:
        raise NotFound("This user has no entry in this period", details={"board": where.board, "period": where.period})
    entries = _removed(removed)
    kept = yield from _record(st, msgspec.structs.replace(act, amount=removed[0][1], details=_text(entries[0])))
    yield from _correct(st, where, removed, kept)
    return Removal(act=kept, entries=_taken(removed))


def wipe(st: Statements, act: ModerationAct, where: BoardPeriod) -> Steps[Removal]:
    """Take every entry off one board period; the act keeps how many (`amount`) and each entry
    removed (`details`). Every user on it is locked first: their awards wait, then start afresh."""
    yield st.lock_period, (where.board, where.period)
    removed = yield st.wipe, (where.board, where.period)
    details = _text({"removed": _removed(removed)})
    kept = yield from _record(st, msgspec.structs.replace(act, amount=len(removed), details=details))
    yield from _correct(st, where, removed, kept)
    return Removal(act=kept, entries=_taken(removed))


def _taken(rows: Rows) -> list[tuple[str, int]]:
    """(user id, seq) of removed entries (user_id, score, subscore, seq, metadata)."""
    return [(user_id, seq) for user_id, _, _, seq, _ in rows]


def _correct(st: Statements, where: BoardPeriod, removed: Rows, act: ModerationAct) -> Steps[None]:
    """The correction rows of removed entries (user_id, score, ...): each takes its score back."""
    for start in range(0, len(removed), CORRECTIONS_PER_STATEMENT):
        chunk = removed[start : start + CORRECTIONS_PER_STATEMENT]
        args: list[Any] = []
        for user_id, score, *_ in chunk:
            args += [where.board, where.period, user_id, -score, score, 0, act.created_ms, act.id]
        yield st.corrections(len(chunk)), tuple(args)


def _removed(rows: Rows) -> list[dict[str, Any]]:
    """Removed entries as the act's details keep them (the metadata as the JSON object it is)."""
    return [
        {"userId": u, "score": score, "subscore": sub, "seq": seq, "metadata": _object(meta)}
        for u, score, sub, seq, meta in rows
    ]


def _object(text: str | None) -> Any:
    return None if text is None else msgspec.json.decode(text)


def _text(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def standings_of(st: Statements, user_id: str) -> Steps[list[tuple[BoardPeriod, Standing]]]:
    """Every entry of a user who is not disqualified, with its board period (`ascending` unset)."""
    rows = yield st.standings_of, (user_id,)
    return [(BoardPeriod(board=r[0], period=r[1]), standing(r[2:])) for r in rows]


def history(st: Statements, user_id: str, *, after: int, limit: int) -> Steps[UserHistory | None]:
    """A user's changes numbered below `after` (0: from the newest), newest first, at most `limit`,
    the acts on them and whether they are disqualified; None for an unknown user."""
    users = yield st.user, (user_id,)
    if not users:
        return None
    _, username, disqualified_ms = users[0]
    changes = yield st.history, (user_id, after or 2**63 - 1, limit)
    acts = yield st.acts_on, (user_id,)
    return UserHistory(
        user_id=user_id,
        username=username,
        disqualified_ms=disqualified_ms,
        changes=[HistoryRow(**dict(zip(HistoryRow.__struct_fields__, row, strict=True))) for row in changes],
        acts=[act_of(row) for row in acts],
    )


def act_of(row: tuple[Any, ...]) -> ModerationAct:
    """An act from its row (ACT_COLUMNS)."""
    act_id, action, operator, reason, user_id, board, period, amount, details, created = row
    return ModerationAct(
        id=act_id,
        action=action,
        operator=operator,
        reason=reason,
        user_id=user_id,
        board=board,
        period=period,
        amount=amount,
        details=details,
        created_ms=created,
    )
