"""The audit chain: one global hash chain over the history, written once for SQLite and PostgreSQL.

Every chained table is declared in CHAINED (table, key column, hashed columns, subject columns,
when a row is final). A trigger queues each row's key in `audit_queue` in the transaction that
makes the row final, so finding unsealed rows costs nothing per tick: the queue holds only them,
whatever the size of the history. A sealer (one at a time: the SQLite writer's lock, or a
PostgreSQL advisory lock) appends queued rows to `audit_chain` in the order it finds them:
`digest` = H(table, key, hashed columns, subject keys), `hash` = H(previous hash, seq, table, key,
digest, when the row became final). Commit order does not matter (PostgreSQL's ids commit out of
order): no watermark.

One chain, not one per board: score_history rows and held awards belong to no single board, an
erasure or an operator's decision spans boards, and an operator anchors one head.

Subjects (user ids, operators) are personal data and an erasure rewrites them to a pseudonym, so
they are not hashed as they are: each subject has a random key in `audit_subjects` (under a digest
of its id), and the digest holds the key. An erasure renames the subject's key row with its rows,
so their digests still hold, and once the user's id is gone the key links the pseudonym to
nothing. A row moved to another subject, alone, no longer matches.

Retention (`storage.history_retention_days`) deletes old rows but keeps their entries: `verify`
accepts an entry whose row is gone when the row became final before the retention cutoff, and
names it when younger. `forget` drops a prefix of the chain whose rows are gone: the last dropped
entry's seq and hash stay in `audit_checkpoints`, and `verify` starts from there."""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import msgspec

from .schema import Dialect

GENESIS = "0" * 64  # the previous hash of the first entry
# PostgreSQL advisory lock: one sealer at a time across processes; an erasure takes it too, so that
# a tick never seals a row under the subject an erasure is renaming. Its second key is the schema's
# (SCHEMA_KEY): advisory locks are the whole database's, and deployments (or tests) in schemas of
# their own must not skip each other's sealing.
SEALING_LOCK = 0x5C0EA0D1
SCHEMA_KEY = "hashtext(coalesce(current_schema(), ''))"
NEW_PAGE = ("", ())  # a step that ends the read transaction of a page and begins the next one's
Rows = list[tuple[Any, ...]]
Query = tuple[str, tuple[Any, ...]]
ChainSteps = Generator[Query, Rows, Any]


@dataclass(frozen=True)
class Chained:
    """A table whose rows are chained once final."""

    table: str
    key: str  # an integer column numbering the rows, never reused
    columns: tuple[str, ...]  # hashed as they are: none of them may change once the row is final
    subjects: tuple[str, ...] = ("user_id",)  # user ids, bound through their subject's key
    # SQL that holds once the row is final, its columns written `{row}status` (a trigger reads
    # `NEW.status`, a query `t.status`); empty: final once inserted.
    final_when: str = ""


# score_history's previous_score and new_score are not hashed: they copy the first board's
# board_history row (chained) and are set when a held award is approved. Held awards are chained
# once decided; reason and decided_by are the decision's.
CHAINED: tuple[Chained, ...] = (
    Chained(
        "score_history",
        "id",
        ("action_type", "action_id", "score_change", "token_nonce", "action_token_hash", "created_at"),
    ),
    Chained(
        "board_history",
        "id",
        (
            "board",
            "period",
            "award_id",
            "service",
            "value",
            "subscore",
            "previous_score",
            "new_score",
            "metadata",
            "created_at",
        ),
    ),
    Chained(
        "held_awards",
        "id",
        ("award_id", "action_type", "action_id", "score", "boards", "status", "created_at", "reason", "decided_at"),
        subjects=("user_id", "decided_by"),
        final_when="{row}status <> 'pending'",
    ),
    # Operators' moderation acts. `details` (a removal's entries, which name users) is not hashed:
    # an erasure renames the users in it, as it renames the subjects.
    Chained(
        "moderation",
        "id",
        ("action", "reason", "board", "period", "amount", "created_at"),
        subjects=("user_id", "operator"),
    ),
)
BY_TABLE = {chained.table: chained for chained in CHAINED}

_NOW_MS = {
    "sqlite": "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
    "postgres": "(extract(epoch from clock_timestamp()) * 1000)::bigint",
}
# A page of the queue taken off it in one statement, the queued rows found by their place in the
# table rather than by key. Deleting by key (`tbl = $1 AND row_id IN (...)`) let PostgreSQL's cached
# generic plan, made while the queue looked nearly empty, read every queued row of the table against
# the page's keys: 8-12 ms a page with 15,000 queued, so a sealer that fell behind fell further.
_TAKE = {
    "sqlite": (
        "DELETE FROM audit_queue WHERE rowid IN (SELECT rowid FROM audit_queue LIMIT ?1) "
        "RETURNING tbl, row_id, queued_at"
    ),
    "postgres": (
        "DELETE FROM audit_queue WHERE ctid = ANY(ARRAY(SELECT ctid FROM audit_queue LIMIT $1)) "
        "RETURNING tbl, row_id, queued_at"
    ),
}
_PG_ENQUEUE = (
    "CREATE OR REPLACE FUNCTION audit_enqueue() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN "
    "INSERT INTO audit_queue (tbl, row_id, queued_at) VALUES (TG_TABLE_NAME, NEW.{key}, {now}) "
    "ON CONFLICT DO NOTHING; RETURN NULL; END $f$"
)


def triggers(dialect: Dialect) -> list[str]:
    """The statements that (re)create the queueing triggers of every chained table, idempotent:
    run at every start, after the migrations, so a table added to CHAINED is queued at once."""
    now = _NOW_MS[dialect.name]
    statements: list[str] = []
    for c in CHAINED:
        final = c.final_when
        inserted = f" WHEN ({_on('NEW.', final)})" if final else ""
        updated = f"{_on('NEW.', final)} AND NOT ({_on('OLD.', final)})" if final else ""
        if dialect.name == "sqlite":
            body = (
                f"BEGIN INSERT OR IGNORE INTO audit_queue (tbl, row_id, queued_at) "  # noqa: S608 - declared names
                f"VALUES ('{c.table}', NEW.{c.key}, {now}); END"
            )
            statements.append(
                f"CREATE TRIGGER IF NOT EXISTS audit_{c.table} AFTER INSERT ON {c.table}{inserted} {body}"
            )
            if final:
                statements.append(
                    f"CREATE TRIGGER IF NOT EXISTS audit_{c.table}_final AFTER UPDATE ON {c.table} WHEN {updated} {body}"
                )
        else:
            function = f"audit_enqueue_{c.key}"
            statements.append(_PG_ENQUEUE.replace("audit_enqueue()", f"{function}()").format(key=c.key, now=now))
            statements.append(
                f"CREATE OR REPLACE TRIGGER audit_{c.table} AFTER INSERT ON {c.table} FOR EACH ROW{inserted} "
                f"EXECUTE FUNCTION {function}()"
            )
            if final:
                statements.append(
                    f"CREATE OR REPLACE TRIGGER audit_{c.table}_final AFTER UPDATE ON {c.table} FOR EACH ROW "
                    f"WHEN ({updated}) EXECUTE FUNCTION {function}()"
                )
    return statements


def _on(row: str, condition: str) -> str:
    """A `final_when` condition read on one row: a trigger's `NEW.`, a query's `t.`."""
    return condition.replace("{row}", row)


def digest(table: str, key: int, values: tuple[Any, ...], subject_keys: tuple[str | None, ...]) -> str:
    """A row's sealed content: its table, key, hashed columns and its subjects' keys."""
    return hashlib.sha256(msgspec.json.encode([table, key, list(values), list(subject_keys)])).hexdigest()


def link(previous: str, *, seq: int, table: str, key: int, row_digest: str, final_ms: int) -> str:
    """An entry's hash: it follows from the previous entry's, so altering or removing one breaks every later one."""
    return hashlib.sha256(f"{previous}|{seq}|{table}|{key}|{row_digest}|{final_ms}".encode()).hexdigest()


# Cached: a page's statements take as many marks as it has rows, and building them anew took a
# quarter of sealing a page. At most a page's worth of counts (and of starts, in `_tuples`).
@functools.cache
def _marks(dialect: Dialect, count: int, start: int = 1) -> str:
    return dialect.sql(", ".join(f"${i}" for i in range(start, start + count)))


@functools.cache
def _tuples(dialect: Dialect, count: int, width: int) -> str:
    return ", ".join(f"({_marks(dialect, width, 1 + i * width)})" for i in range(count))


class ChainStatements:
    """The chain's statements in one dialect (those over a list of keys made for each length)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        sql = dialect.sql
        self.take = _TAKE[dialect.name]
        self.head = "SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1"
        self.checkpoint = "SELECT seq, hash FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
        self.entries = sql(
            "SELECT seq, tbl, row_id, digest, hash, final_at FROM audit_chain WHERE seq > $1 ORDER BY seq LIMIT $2"
        )
        self.entry = sql("SELECT seq, hash FROM audit_chain WHERE seq = $1")
        self.pending = "SELECT COUNT(*), MIN(queued_at) FROM audit_queue"
        self.forget = sql("DELETE FROM audit_chain WHERE seq <= $1")
        self.add_checkpoint = sql("INSERT INTO audit_checkpoints (seq, hash, made_at) VALUES ($1, $2, $3)")
        self.key_range = {c.table: f"SELECT MIN({c.key}), MAX({c.key}) FROM {c.table}" for c in CHAINED}  # noqa: S608
        self.unchained = {c.table: sql(self._unchained(c)) for c in CHAINED}

    @staticmethod
    def _unchained(c: Chained) -> str:
        final = f" AND {_on('t.', c.final_when)}" if c.final_when else ""
        return (
            f"SELECT t.{c.key} FROM {c.table} t WHERE t.{c.key} > $1 AND t.{c.key} <= $2{final} "  # noqa: S608
            f"AND NOT EXISTS (SELECT 1 FROM audit_chain a WHERE a.tbl = '{c.table}' AND a.row_id = t.{c.key}) "
            f"AND NOT EXISTS (SELECT 1 FROM audit_queue q WHERE q.tbl = '{c.table}' AND q.row_id = t.{c.key}) "
            f"ORDER BY t.{c.key} LIMIT 1"
        )

    def rows(self, c: Chained, count: int, *, unsealed: bool = False) -> str:
        """The rows of `count` keys of a table: key, hashed columns, subjects. With `unsealed`, not
        those the chain holds already (a sealed row deleted and inserted again, which its trigger
        queued anew): sealing one twice would fail every round after it."""
        columns = ", ".join((c.key, *c.columns, *c.subjects))
        sealed = f" AND NOT EXISTS (SELECT 1 FROM audit_chain a WHERE a.tbl = '{c.table}' AND a.row_id = t.{c.key})"  # noqa: S608 - constants only
        marks = _marks(self.dialect, count)
        return f"SELECT {columns} FROM {c.table} t WHERE {c.key} IN ({marks}){sealed if unsealed else ''}"  # noqa: S608

    def keys(self, count: int) -> str:
        """The keys of `count` subjects."""
        return f"SELECT subject, key FROM audit_subjects WHERE subject IN ({_marks(self.dialect, count)})"  # noqa: S608

    def add_keys(self, count: int) -> str:
        """New subjects' keys, `count` (subject, key) pairs."""
        return "INSERT INTO audit_subjects (subject, key) VALUES " + _tuples(self.dialect, count, 2)  # noqa: S608 - marks

    def add_entries(self, count: int) -> str:
        """`count` chain entries (seq, tbl, row_id, digest, hash, final_at)."""
        values = _tuples(self.dialect, count, 6)
        return "INSERT INTO audit_chain (seq, tbl, row_id, digest, hash, final_at) VALUES " + values  # noqa: S608 - marks


def _flat(pairs: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    return tuple(value for pair in pairs for value in pair)


def _rows_of(
    st: ChainStatements, wanted: dict[str, list[int]], *, unsealed: bool = False
) -> Generator[Query, Rows, dict[tuple[str, int], tuple[Any, ...]]]:
    """The current rows of these keys, by (table, key); with `unsealed`, those not in the chain."""
    found: dict[tuple[str, int], tuple[Any, ...]] = {}
    for table, keys in wanted.items():
        if keys:
            for row in (yield st.rows(BY_TABLE[table], len(keys), unsealed=unsealed), tuple(keys)):
                found[(table, row[0])] = tuple(row)
    return found


def subject_id(user_id: str) -> str:
    """How `audit_subjects` names a subject: a digest of the user id, so that no further table
    holds the id itself (an export or an erasure looks for it in the tables that do)."""
    return hashlib.sha256(b"subject|" + user_id.encode()).hexdigest()


def _subject_keys(st: ChainStatements, subjects: set[str]) -> Generator[Query, Rows, dict[str, str]]:
    """The keys of these subjects that have one, by user id."""
    if not subjects:
        return {}
    named = {subject_id(subject): subject for subject in subjects}
    ordered = sorted(named)
    return {named[subject]: key for subject, key in (yield st.keys(len(ordered)), tuple(ordered))}


def _row_digest(c: Chained, row: tuple[Any, ...], keys: dict[str, str]) -> str:
    values = row[1 : 1 + len(c.columns)]
    subjects = row[1 + len(c.columns) :]
    return digest(c.table, row[0], values, tuple(None if s is None else keys.get(s, "") for s in subjects))


def _subjects_in(rows: dict[tuple[str, int], tuple[Any, ...]]) -> set[str]:
    found: set[str] = set()
    for (table, _), row in rows.items():
        found.update(s for s in row[1 + len(BY_TABLE[table].columns) :] if s is not None)
    return found


def seal(st: ChainStatements, *, limit: int, new_key: Callable[[], str] = lambda: secrets.token_hex(16)) -> ChainSteps:
    """Append up to `limit` queued rows to the chain, in one transaction that holds the sealing
    lock (taken off the queue first: a transaction that fails puts them back); how many were
    queued (a full page: there may be more)."""
    queued = yield st.take, (limit,)
    if not queued:
        return 0
    head = (yield st.head, ()) or (yield st.checkpoint, ())
    seq, previous = (int(head[0][0]), str(head[0][1])) if head else (0, GENESIS)
    wanted: dict[str, list[int]] = {}
    for table, key, _ in queued:
        wanted.setdefault(table, []).append(int(key))
    rows = yield from _rows_of(st, {table: keys for table, keys in wanted.items() if table in BY_TABLE}, unsealed=True)
    subjects = _subjects_in(rows)
    keys = yield from _subject_keys(st, subjects)
    if missing := sorted(subjects - keys.keys()):
        added = [(subject, new_key()) for subject in missing]
        yield st.add_keys(len(added)), _flat([(subject_id(subject), key) for subject, key in added])
        keys.update(added)
    entries = []
    # Sorted within the page by when each row became final; the chain's order is the sealer's.
    for table, key, final_ms in sorted(queued, key=lambda q: (int(q[2]), int(q[1]), q[0])):
        row = rows.get((table, int(key)))
        if row is None:  # a table no longer declared, a row gone before it was sealed, or one sealed already
            continue
        seq += 1
        row_digest = _row_digest(BY_TABLE[table], row, keys)
        previous = link(previous, seq=seq, table=table, key=int(key), row_digest=row_digest, final_ms=int(final_ms))
        entries.append((seq, table, int(key), row_digest, previous, int(final_ms)))
    for start in range(0, len(entries), 100):  # 600 parameters a statement
        chunk = entries[start : start + 100]
        yield st.add_entries(len(chunk)), _flat(chunk)
    return len(queued)


def forget(st: ChainStatements, *, through_seq: int, now_ms: int) -> ChainSteps:
    """Compact the chain once the rows of its entries up to `through_seq` are all gone (retention
    deleted them): drop those entries, keeping the last one's seq and hash as the checkpoint that
    `verify` starts from. False when there is no such entry."""
    entry = yield st.entry, (through_seq,)
    if not entry:
        return False
    yield st.add_checkpoint, (through_seq, entry[0][1], now_ms)
    yield st.forget, (through_seq,)
    return True


class Report(msgspec.Struct, kw_only=True):
    """What `verify` found: the entries it checked and the first problem, if any."""

    first_seq: int  # the checkpoint's seq (0 without one): entries after it were checked
    last_seq: int
    head: str
    entries: int  # checked, the purged ones included
    purged: int  # entries whose row retention deleted
    pending: int  # rows queued, not sealed yet, when the walk began
    oldest_pending_ms: int | None
    problem: str | None = None


def verify(
    st: ChainStatements,
    *,
    anchor: str | None = None,
    purged_before_ms: int | None = None,
    page: int = 1000,
    id_page: int = 50_000,
) -> ChainSteps:
    """Walk the chain in seq order, a page per read transaction, recomputing each entry's hash and
    its row's digest; then look for final rows neither sealed nor queued. The Report names the first
    bad row (or entry); an `anchor` (a head printed earlier) must still be in the chain. A row gone
    that became final before `purged_before_ms` was retention's to delete: counted, not bad."""
    checkpoint = yield st.checkpoint, ()
    # Counted as the walk begins: a row sealed while it goes on is walked if a later page holds it.
    ((pending, oldest),) = yield st.pending, ()
    seq, previous = (int(checkpoint[0][0]), str(checkpoint[0][1])) if checkpoint else (0, GENESIS)
    first = seq
    anchored = anchor is None or anchor == previous
    checked = purged = 0

    def report(problem: str | None) -> Report:
        return Report(
            first_seq=first,
            last_seq=seq,
            head=previous,
            entries=checked,
            purged=purged,
            pending=int(pending),
            oldest_pending_ms=None if oldest is None else int(oldest),
            problem=problem,
        )

    while entries := (yield st.entries, (seq, page)):
        wanted: dict[str, list[int]] = {}
        for _, table, key, _, _, _ in entries:
            wanted.setdefault(table, []).append(int(key))
        rows = yield from _rows_of(st, {t: k for t, k in wanted.items() if t in BY_TABLE})
        keys = yield from _subject_keys(st, _subjects_in(rows))
        for entry_seq, table, key, sealed, entry_hash, final_ms in entries:
            where = f"{table} {_key_name(table)} {key} (chain seq {entry_seq})"
            if entry_seq != seq + 1:
                return report(f"audit_chain seq {seq + 1}: missing (the chain goes from seq {seq} to {entry_seq})")
            if link(previous, seq=entry_seq, table=table, key=key, row_digest=sealed, final_ms=final_ms) != entry_hash:
                return report(f"{where}: the chain entry was altered or inserted (its hash does not follow)")
            row = rows.get((table, int(key)))
            if row is None and purged_before_ms is not None and final_ms < purged_before_ms:
                purged += 1
            elif row is None:
                return report(f"{where}: deleted")
            elif _row_digest(BY_TABLE[table], row, keys) != sealed:
                return report(f"{where}: altered since it was sealed")
            seq, previous = entry_seq, entry_hash
            checked += 1
            anchored = anchored or entry_hash == anchor
        yield NEW_PAGE
    for c in CHAINED:
        lowest, last = (yield st.key_range[c.table], ())[0]
        low = 0 if lowest is None else int(lowest) - 1
        while last is not None and low < last:
            found = yield st.unchained[c.table], (low, low + id_page)
            if found:
                return report(
                    f"{c.table} {c.key} {found[0][0]}: not in the chain (inserted outside it, or its entry deleted)"
                )
            low += id_page
            yield NEW_PAGE
    if not anchored:
        return report(f"anchor {anchor}: not in the chain (the history up to it was rewritten, or purged)")
    return report(None)


def _key_name(table: str) -> str:
    """The key column's name of a declared table (`id` for an unknown one)."""
    chained = BY_TABLE.get(table)
    return chained.key if chained is not None else "id"


def head(st: ChainStatements) -> ChainSteps:
    """The chain's head: (seq, hash) of its last entry, the checkpoint's, or (0, GENESIS)."""
    found = (yield st.head, ()) or (yield st.checkpoint, ())
    return (int(found[0][0]), str(found[0][1])) if found else (0, GENESIS)
