"""Personal data: every row kept about one user, read for an export and rewritten for an erasure,
in the statements both databases share (`$n` parameters, rendered per dialect).

An erasure keeps the history (the audit trail) under a pseudonym instead of the user's id and
name, moves the user's rows to it (operators' acts on them and their own as an operator too), deletes what is theirs alone (board entries, tokens, notices, attestations)
and rewrites the rows of others that name them (others' notices, trusted servers' kept answers).
Attestations of their actions are theirs alone too.
board_history has no index on user_id (every write would pay for one): an export or erasure reads
it whole, which is rare and runs on the reading connection or in its own transaction."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

import msgspec

from ..errors import UserNotFound
from .chain import subject_id
from .schema import Dialect

T = TypeVar("T")
Rows = list[tuple[Any, ...]]
# Yields queries, is sent each one's rows (all of them), returns the answer.
RowSteps = Generator[tuple[str, tuple[Any, ...]], Rows, T]

USER = "SELECT id, username, created_at, updated_at FROM users WHERE id = $1"
ENTRIES = (
    "SELECT board, period, score, subscore, updated_at, metadata FROM board_entries WHERE user_id = $1 "
    "ORDER BY board, period"
)
AWARDS = (
    "SELECT id, action_type, action_id, score_change, previous_score, new_score, created_at FROM score_history "
    "WHERE user_id = $1 ORDER BY id"
)
CHANGES = (
    "SELECT id, board, period, award_id, service, value, subscore, previous_score, new_score, metadata, created_at "
    "FROM board_history WHERE user_id = $1 ORDER BY id"
)
TOKENS = (
    "SELECT action_type, action_id, score_increment, issued_at, expires_at, used_at FROM action_tokens "
    "WHERE user_id = $1 ORDER BY issued_at, nonce"
)
NOTICES = "SELECT id, type, data, created_at FROM notices WHERE user_id = $1 ORDER BY id"
ATTESTATIONS = (
    "SELECT action_id, service, created_at FROM attestations WHERE user_id = $1 ORDER BY created_at, action_id"
)
# Operators' acts on the user, and those the user made as an operator.
ACTS = (
    "SELECT id, action, operator, reason, user_id, board, period, amount, details, created_at FROM moderation "
    "WHERE user_id = $1 OR operator = $1 ORDER BY id"
)
HELD = (
    "SELECT id, action_type, action_id, score, status, reason, created_at, decided_at, rules FROM held_awards "
    "WHERE user_id = $1 ORDER BY id"
)
# Held awards of others the user decided as an operator.
DECISIONS = "SELECT id, status, reason, decided_at FROM held_awards WHERE decided_by = $1 ORDER BY id"

# Whether an id with no users row is kept all the same: in the acts and decisions of an operator who
# never played, or in a game server's attestation of an action of a player who has not played yet.
KEPT_WITHOUT_USER = (
    "SELECT 1 FROM moderation WHERE operator = $1 UNION ALL SELECT 1 FROM held_awards WHERE decided_by = $1 "
    "UNION ALL SELECT 1 FROM attestations WHERE user_id = $1 LIMIT 1"
)

LOCK = "SELECT username FROM users WHERE id = $1{row_lock}"
ADD_PSEUDONYM = "INSERT INTO users (id, username, created_at, updated_at) VALUES ($1, $1, $2, $2)"
COMPLETED = "SELECT action_id, completed_at FROM completed_actions WHERE user_id = $1 ORDER BY completed_at, action_id"
MOVE_AWARDS = "UPDATE score_history SET user_id = $2 WHERE user_id = $1"
MOVE_CHANGES = "UPDATE board_history SET user_id = $2 WHERE user_id = $1"
# A pending held award of an erased user is rejected: approved, it would land under the pseudonym.
REJECT_PENDING = (
    "UPDATE held_awards SET status = 'rejected', reason = 'the user was erased', decided_at = $2 "
    "WHERE user_id = $1 AND status = 'pending'"
)
MOVE_HELD = "UPDATE held_awards SET user_id = $2 WHERE user_id = $1"
MOVE_COMPLETED = "UPDATE completed_actions SET user_id = $2 WHERE user_id = $1"
MOVE_DECIDED = "UPDATE held_awards SET decided_by = $2 WHERE decided_by = $1"  # an operator's decisions
MOVE_ACTS = "UPDATE moderation SET user_id = $2 WHERE user_id = $1"
MOVE_OPERATOR = "UPDATE moderation SET operator = $2 WHERE operator = $1"  # acts the user made as an operator
# The audit chain's key of the subject goes with their rows, which still verify (storage/chain.py):
# parameters are the two subject ids (chain.subject_id).
MOVE_SUBJECT = "UPDATE audit_subjects SET subject = $2 WHERE subject = $1"
DELETE_ENTRIES = "DELETE FROM board_entries WHERE user_id = $1 RETURNING board, period"
DELETE_TOKENS = "DELETE FROM action_tokens WHERE user_id = $1"
DELETE_NOTICES = "DELETE FROM notices WHERE user_id = $1"
DELETE_ATTESTATIONS = "DELETE FROM attestations WHERE user_id = $1"
DELETE_USER = "DELETE FROM users WHERE id = $1"
# Rows of others that may name the user, found by the user's id as their JSON writes it (ids are
# plain ASCII without quotes or backslashes: the text is exact), then rewritten one by one.
NAMING_NOTICES = "SELECT id, data FROM notices WHERE data LIKE $1"
REWRITE_NOTICE = "UPDATE notices SET data = $2 WHERE id = $1"
NAMING_ANSWERS = "SELECT service, key, outcome, answer FROM idempotency_keys WHERE outcome LIKE $1 OR answer LIKE $2"
REWRITE_ANSWER = "UPDATE idempotency_keys SET outcome = $3, answer = $4 WHERE service = $1 AND key = $2"
NAMING_ACTS = "SELECT id, details FROM moderation WHERE details LIKE $1"  # a wipe's removed entries
REWRITE_ACT = "UPDATE moderation SET details = $2 WHERE id = $1"


class Statements:
    """The personal-data statements in one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        sql = dialect.sql
        self.user, self.entries, self.awards = sql(USER), sql(ENTRIES), sql(AWARDS)
        self.changes, self.tokens, self.notices = sql(CHANGES), sql(TOKENS), sql(NOTICES)
        self.attestations, self.held, self.completed = sql(ATTESTATIONS), sql(HELD), sql(COMPLETED)
        self.acts, self.decisions, self.kept_without_user = sql(ACTS), sql(DECISIONS), sql(KEPT_WITHOUT_USER)
        self.lock, self.add_pseudonym = sql(LOCK), sql(ADD_PSEUDONYM)
        self.reject_pending = sql(REJECT_PENDING)
        self.move = tuple(
            sql(s)
            for s in (MOVE_AWARDS, MOVE_CHANGES, MOVE_HELD, MOVE_DECIDED, MOVE_COMPLETED, MOVE_ACTS, MOVE_OPERATOR)
        )
        self.move_subject = sql(MOVE_SUBJECT)
        self.delete_entries = sql(DELETE_ENTRIES)
        self.delete_rest = (sql(DELETE_TOKENS), sql(DELETE_NOTICES), sql(DELETE_ATTESTATIONS))
        self.delete_user = sql(DELETE_USER)
        self.naming_notices, self.rewrite_notice = sql(NAMING_NOTICES), sql(REWRITE_NOTICE)
        self.naming_answers, self.rewrite_answer = sql(NAMING_ANSWERS), sql(REWRITE_ANSWER)
        self.naming_acts, self.rewrite_act = sql(NAMING_ACTS), sql(REWRITE_ACT)


def read(st: Statements, user_id: str) -> RowSteps[Kept | None]:
    """Every row kept about a user; None when nothing is."""
    users = yield st.user, (user_id,)
    if not users and not (yield st.kept_without_user, (user_id,)):
        return None
    statements = (st.entries, st.awards, st.changes, st.tokens, st.notices, st.attestations, st.held, st.completed)
    rows = []
    for statement in (*statements, st.acts, st.decisions):
        rows.append((yield statement, (user_id,)))
    entries, awards, changes, tokens, notices, attestations, held, completed, acts, decisions = rows
    return Kept(
        user=users[0] if users else None,
        entries=entries,
        awards=awards,
        changes=changes,
        tokens=tokens,
        notices=notices,
        attestations=attestations,
        held=held,
        completed=completed,
        acts=acts,
        decisions=decisions,
    )


def erase(st: Statements, user_id: str, pseudonym: str, now_ms: int) -> RowSteps[list[tuple[str, str]]]:
    """Erase a user in one transaction: the (board, period) pairs they were on. USER_NOT_FOUND,
    having changed nothing, for an id nothing is kept about."""
    if not (yield st.lock, (user_id,)) and not (yield st.kept_without_user, (user_id,)):
        raise UserNotFound(details={"userId": user_id})
    yield st.add_pseudonym, (pseudonym, now_ms)
    yield st.reject_pending, (user_id, now_ms)
    for statement in st.move:
        yield statement, (user_id, pseudonym)
    yield st.move_subject, (subject_id(user_id), subject_id(pseudonym))
    shelves = yield st.delete_entries, (user_id,)
    for statement in st.delete_rest:
        yield statement, (user_id,)
    yield st.delete_user, (user_id,)
    for notice_id, data in (yield st.naming_notices, (mentions(user_id, "userId"),)):
        if (renamed := rename_in(data, user_id, pseudonym)) != data:
            yield st.rewrite_notice, (notice_id, renamed)
    for act_id, details in (yield st.naming_acts, (mentions(user_id, "userId"),)):
        if (renamed := rename_in(details, user_id, pseudonym)) != details:
            yield st.rewrite_act, (act_id, renamed)
    kept = yield st.naming_answers, (mentions(user_id, "user_id"), mentions(user_id, "userId"))
    for service, key, outcome, answer in kept:
        yield (
            st.rewrite_answer,
            (service, key, rename_in(outcome, user_id, pseudonym), rename_in(answer, user_id, pseudonym)),
        )
    return [(board, period) for board, period in shelves]


class Kept(msgspec.Struct, frozen=True, kw_only=True):
    """Every row kept about one user, as the statements above read them."""

    user: tuple[Any, ...] | None  # None: no users row (an operator's acts, an attestation)
    entries: list[tuple[Any, ...]]
    awards: list[tuple[Any, ...]]
    changes: list[tuple[Any, ...]]
    tokens: list[tuple[Any, ...]]
    notices: list[tuple[Any, ...]]
    attestations: list[tuple[Any, ...]]
    held: list[tuple[Any, ...]]  # awards a cheat rule held
    completed: list[tuple[Any, ...]]  # (actionId, time) of awards retention deleted
    acts: list[tuple[Any, ...]]  # operators' acts on the user, and the user's own as an operator
    decisions: list[tuple[Any, ...]]  # held awards the user decided as an operator


def mentions(user_id: str, field: str) -> str:
    """A LIKE pattern for JSON text holding `"field":"user_id"`. It may find more (`_` matches any
    character; SQLite's LIKE ignores ASCII case): `rename_in` changes only exact matches."""
    return f'%"{field}":"{user_id}"%'


def rename_in(text: str | None, user_id: str, pseudonym: str) -> str | None:
    """JSON text with every object that names the user by an id field naming the pseudonym instead,
    as its id and its name; other text as it was."""
    if text is None:
        return None
    return msgspec.json.encode(_renamed(msgspec.json.decode(text), user_id, pseudonym)).decode()


_ID_FIELDS = ("userId", "user_id")
_NAME_FIELDS = ("username",)


def _renamed(value: Any, user_id: str, pseudonym: str) -> Any:
    if isinstance(value, list):
        return [_renamed(v, user_id, pseudonym) for v in value]
    if not isinstance(value, dict):
        return value
    named = any(value.get(f) == user_id for f in _ID_FIELDS)
    out = {}
    for key, v in value.items():
        if named and (key in _ID_FIELDS or key in _NAME_FIELDS):
            out[key] = pseudonym
        else:
            out[key] = _renamed(v, user_id, pseudonym)
    return out
