"""Retention of the history (`storage.history_retention_days`): rows older than the kept days are
deleted a window of ids at a time, each window one short transaction, so awards never wait long.

Kept whatever their age: the board_history row each board entry's `seq` points at (the entry's
value is what that row wrote; ties rank by it), the awards such a row or a pending held award
refers to, and pending held awards. An award's row goes, but its (user, actionId) pair moves to
`completed_actions`: a user completes an actionId at most once, however long ago."""

from __future__ import annotations

from dataclasses import dataclass

from .personal import RowSteps
from .schema import Dialect

# A window: the ids after the cursor, oldest first; its last id older than the cutoff, and whether
# it reached a row at or after the cutoff (ids follow time: nothing beyond it is old enough yet).
WINDOW = (
    "SELECT max(CASE WHEN created_at < $3 THEN id END), max(created_at) >= $3, count(*) FROM "
    "(SELECT id, created_at FROM {table} WHERE id > $1 ORDER BY id LIMIT $2) AS w"
)
DROP_CHANGES = (
    "DELETE FROM board_history WHERE id > $1 AND id <= $2 AND created_at < $3 AND NOT EXISTS "
    "(SELECT 1 FROM board_entries e WHERE e.board = board_history.board AND e.period = board_history.period "
    "AND e.user_id = board_history.user_id AND e.seq = board_history.id) RETURNING id"
)
# An award goes once no board change and no held award refers to it.
_UNREFERENCED = (
    "id > $1 AND id <= $2 AND created_at < $3 "
    "AND NOT EXISTS (SELECT 1 FROM board_history c WHERE c.award_id = score_history.id) "
    "AND NOT EXISTS (SELECT 1 FROM held_awards h WHERE h.award_id = score_history.id)"
)
KEEP_COMPLETED = (
    "INSERT INTO completed_actions (user_id, action_id, completed_at) "  # noqa: S608 - constants only
    f"SELECT user_id, action_id, created_at FROM score_history WHERE {_UNREFERENCED} "
    "ON CONFLICT (user_id, action_id) DO NOTHING"
)
DROP_AWARDS = f"DELETE FROM score_history WHERE {_UNREFERENCED} RETURNING id"  # noqa: S608 - constants only
DROP_DECIDED = (
    "DELETE FROM held_awards WHERE id IN (SELECT id FROM held_awards WHERE status IN ('approved', 'rejected') "
    "AND decided_at < $1 ORDER BY id LIMIT $2) RETURNING id"
)


@dataclass(frozen=True)
class Swept:
    """One window's outcome: the rows deleted, the cursor to go on from, and whether the table is
    swept up to the cutoff."""

    deleted: int
    cursor: int
    done: bool


class Statements:
    """The retention statements in one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        sql = dialect.sql
        self.changes_window = sql(WINDOW.format(table="board_history"))
        self.awards_window = sql(WINDOW.format(table="score_history"))
        self.drop_changes = sql(DROP_CHANGES)
        self.keep_completed, self.drop_awards = sql(KEEP_COMPLETED), sql(DROP_AWARDS)
        self.drop_decided = sql(DROP_DECIDED)


def sweep_changes(st: Statements, cursor: int, before_ms: int, window: int) -> RowSteps[Swept]:
    """Delete the board changes older than `before_ms` in the window after `cursor`, but those entries point at."""
    ((last, reached, seen),) = yield st.changes_window, (cursor, window, before_ms)
    if last is None:
        return Swept(deleted=0, cursor=cursor, done=True)
    dropped = yield st.drop_changes, (cursor, last, before_ms)
    return Swept(deleted=len(dropped), cursor=last, done=bool(reached) or seen < window)


def sweep_awards(st: Statements, cursor: int, before_ms: int, window: int) -> RowSteps[Swept]:
    """Delete the awards older than `before_ms` in the window after `cursor` that nothing refers
    to any more (decided held awards first), keeping each one's (user, actionId)."""
    decided = yield st.drop_decided, (before_ms, window)
    ((last, reached, seen),) = yield st.awards_window, (cursor, window, before_ms)
    if last is None:
        return Swept(deleted=len(decided), cursor=cursor, done=True)
    yield st.keep_completed, (cursor, last, before_ms)
    dropped = yield st.drop_awards, (cursor, last, before_ms)
    return Swept(deleted=len(decided) + len(dropped), cursor=last, done=bool(reached) or seen < window)
