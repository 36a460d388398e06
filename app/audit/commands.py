"""`run.py audit verify [--anchor HASH]` and `run.py audit anchor`: read the configured store (the
server's storage settings) on a read-only connection of their own, a page per read transaction,
so they are safe to run while servers write; they never seal, migrate or change anything."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg

from ..clock import iso, now_ms
from ..retention import DAY_MS
from ..settings import FileSettings
from ..storage.backup import read_only
from ..storage.chain import NEW_PAGE, ChainStatements, ChainSteps, Report, head, verify
from ..storage.schema import POSTGRES, SQLITE

# A row's time in the chain is the database's clock, its age for retention the server's: this much
# difference between them is allowed.
CLOCK_SLACK_MS = 300_000


class AuditError(Exception):
    """The store cannot be read for an audit (no database there, or one without the chain)."""


def _on_sqlite(path: str, steps: ChainSteps) -> Any:
    if path == ":memory:":
        raise AuditError("storage.sqlite_path is :memory:, nothing on disk")
    if not Path(path).is_file():
        raise AuditError(f"no database at {Path(path).resolve()}")
    try:
        with contextlib.closing(read_only(Path(path))) as db:
            db.execute("BEGIN")  # a read transaction: this page's snapshot, while writers go on
            try:
                query = next(steps)
                while True:
                    if query is NEW_PAGE:
                        db.execute("COMMIT")
                        db.execute("BEGIN")
                        query = steps.send([])
                    else:
                        query = steps.send(db.execute(*query).fetchall())
            except StopIteration as done:
                return done.value
            finally:
                if db.in_transaction:
                    db.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        raise AuditError(
            f"{Path(path).resolve()}: {exc} (a database without the audit chain: start a server on it once)"
        ) from None
    except sqlite3.DatabaseError as exc:  # not SQLite's, or damaged: unreadable, which says nothing of tampering
        raise AuditError(f"{Path(path).resolve()}: not a readable SQLite database ({exc})") from None


async def _on_postgres(dsn: str, steps: ChainSteps) -> Any:
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise AuditError(f"PostgreSQL does not answer ({exc})") from None
    try:
        query = next(steps)
        while True:
            # One read-only transaction a page: a consistent snapshot, no lock held between pages.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                while query is not NEW_PAGE:
                    rows = await conn.fetch(query[0], *query[1])
                    query = steps.send([tuple(row) for row in rows])
            query = steps.send([])
    except StopIteration as done:
        return done.value
    except asyncpg.UndefinedTableError as exc:
        raise AuditError(f"{exc} (a database without the audit chain: start a server on it once)") from None
    finally:
        await conn.close()


def _read(settings: FileSettings, make: Any) -> Any:
    """Run the steps `make(statements)` against the configured store."""
    storage = settings.storage
    if storage.database_url:
        return asyncio.run(_on_postgres(storage.database_url, make(ChainStatements(POSTGRES))))
    return _on_sqlite(storage.sqlite_path, make(ChainStatements(SQLITE)))


def verify_command(settings: FileSettings, *, anchor: str | None = None, now: int | None = None) -> tuple[bool, str]:
    """Whether the configured store's chain is intact (and holds `anchor`), and the line to print;
    rows older than `storage.history_retention_days` at `now` (ms) may be gone."""
    now = now_ms() if now is None else now
    days = settings.storage.history_retention_days
    purged_before = now - days * DAY_MS + CLOCK_SLACK_MS if days else None
    report: Report = _read(settings, lambda st: verify(st, anchor=anchor, purged_before_ms=purged_before))
    if report.problem is not None:
        return False, f"audit verify: FAILED at {report.problem}; the {report.entries} entries before it are intact"
    pending = ""
    if report.pending:
        assert report.oldest_pending_ms is not None  # a queued row has its time
        age = max(0, now - report.oldest_pending_ms) / 1000
        pending = (
            f"; {report.pending} rows were pending sealing as it began "
            f"(the oldest queued {age:.1f} s before, at {iso(report.oldest_pending_ms)})"
        )
    since = f" after the checkpoint at seq {report.first_seq}" if report.first_seq else ""
    if report.purged:
        since += f" ({report.purged} of their rows deleted by retention)"
    anchored = f"; anchor {anchor} is in it" if anchor is not None else ""
    return True, (
        f"audit verify: ok, {report.entries} entries{since} intact, head seq {report.last_seq} "
        f"hash {report.head}{anchored}{pending}"
    )


def anchor_command(settings: FileSettings) -> str:
    """The line to print: the chain's head hash (to keep elsewhere) and its seq."""
    seq, hash_ = _read(settings, head)
    return f"{hash_} seq {seq}"
