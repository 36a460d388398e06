"""SQLite store (WAL): the shared operations, written through one group-committing connection."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiosqlite

from ..clock import now_ms
from ..errors import ServiceUnavailable
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
from . import catalog, moderation, trusted
from .backup import ServingLock
from .chain import ChainStatements, head, seal, triggers
from .group_commit import GroupCommit, Write
from .moderation import Places
from .operations import Operations
from .personal import Kept, RowSteps, Statements, erase, read
from .retention import Statements as RetentionStatements
from .retention import Swept, sweep_awards, sweep_changes
from .rows import held_award, kept_notice, notice, standing, user_record
from .schema import APPLIED, MIGRATIONS_TABLE, RECORD, SQLITE, migrations, render
from .steps import AllRows, Steps, in_period

log = logging.getLogger(__name__)

T = TypeVar("T")
OPS = Operations(SQLITE)
PERSONAL = Statements(SQLITE)
MODERATION = moderation.Statements(SQLITE)
TRUSTED = trusted.Statements(SQLITE)
CATALOG = catalog.Statements(SQLITE)
CHAIN = ChainStatements(SQLITE)
RETENTION = RetentionStatements(SQLITE)
PURGE_CHUNK = 200  # rows deleted from five b-trees on the loop: 1.3 ms a chunk (2.2 ms at most) here
RESTORE_WAIT_SECONDS = 60.0  # a server starting while `run.py restore` replaces the file waits this long
PURGE = "DELETE FROM action_tokens WHERE rowid IN (SELECT rowid FROM action_tokens WHERE expires_at < ? LIMIT ?)"
PURGE_KEYS = (
    "DELETE FROM idempotency_keys WHERE rowid IN (SELECT rowid FROM idempotency_keys WHERE created_at < ? LIMIT ?)"
)
LAST_NOTICE = "SELECT seq FROM sqlite_sequence WHERE name = 'notices'"
PURGE_NOTICES = "DELETE FROM notices WHERE id IN (SELECT id FROM notices WHERE created_at < ? LIMIT ?)"
PURGE_ATTESTATIONS = (
    "DELETE FROM attestations WHERE rowid IN (SELECT rowid FROM attestations WHERE created_at < ? LIMIT ?)"
)


def _steps(steps: Steps[T]) -> Write[T]:
    """A write that runs shared steps on the writer's connection, each answered synchronously."""

    def write(db: sqlite3.Connection) -> T:
        send = steps.send
        try:
            sql, args = next(steps)
            while True:
                cursor = db.execute(sql, args)
                sql, args = send(tuple(cursor) if sql.__class__ is AllRows else cursor.fetchone())
        except StopIteration as done:
            answer: T = done.value
            return answer

    return write


def _row_steps(steps: RowSteps[T]) -> Write[T]:
    """A write that runs steps that are sent every row of each query."""

    def write(db: sqlite3.Connection) -> T:
        try:
            sql, args = next(steps)
            while True:
                sql, args = steps.send(db.execute(sql, args).fetchall())
        except StopIteration as done:
            answer: T = done.value
            return answer

    return write


def _undoable(steps: Steps[T]) -> Write[T]:
    """Shared steps inside a savepoint of their own: a refusal after their first write undoes it,
    and the batch's other writes stand (two statements more: for writes other than awards)."""
    return _in_savepoint(_steps(steps))


def _in_savepoint(run: Write[T]) -> Write[T]:
    """A write inside a savepoint of its own (see `_undoable`)."""

    def write(db: sqlite3.Connection) -> T:
        db.execute("SAVEPOINT step")
        try:
            answer = run(db)
        except BaseException:
            db.execute("ROLLBACK TO step")
            db.execute("RELEASE step")
            raise
        db.execute("RELEASE step")
        return answer

    return write


def _purge(statement: str, before_ms: int) -> Write[int]:
    def write(db: sqlite3.Connection) -> int:
        return db.execute(statement, (before_ms, PURGE_CHUNK)).rowcount

    return write


class SqliteStore:
    """The embedded system of record: a WAL-mode SQLite file written by one connection.

    Writes are group-committed by `writer` (see GroupCommit). Reads use a second connection on
    aiosqlite's thread, so a long one (a rebuild) never holds up the loop; WAL lets them run
    beside the writer."""

    # A seal runs on the event loop in the writer's batch, ~12 us a row: 128 hold it ~1.6 ms.
    most_sealed = 128

    def __init__(
        self, path: str, *, synchronous: Literal["FULL", "NORMAL"] = "FULL", clock: Callable[[], int] = now_ms
    ) -> None:
        self.path = path
        self.clock = clock  # the service's: a write's period is checked against it as its batch runs
        self.synchronous = synchronous
        self.writer = GroupCommit(path, synchronous=synchronous)
        self.round_trips = self.writer.round_trips
        self._conn: aiosqlite.Connection | None = None
        self._serving = ServingLock(path) if path != ":memory:" else None

    async def open(self) -> None:
        """Take the serving lock (shared with other servers; see storage/backup.py), open the file
        (creating its folder), set WAL and the sync level, migrate."""
        if self._serving is not None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            await self._hold_serving_lock()
        try:
            await self._open()
        except BaseException:
            self._release_serving_lock()
            raise

    async def _hold_serving_lock(self) -> None:
        """Shared with every other server on the file; a restore holds it exclusively: wait for it."""
        assert self._serving is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RESTORE_WAIT_SECONDS
        waited = False
        while not self._serving.acquire(exclusive=False):
            if loop.time() >= deadline:
                raise ServiceUnavailable(f"A restore of {self.path} holds {self._serving.path}")
            if not waited:
                log.warning("waiting for the restore of %s to finish (it holds %s)", self.path, self._serving.path)
                waited = True
            await asyncio.sleep(0.1)

    def _release_serving_lock(self) -> None:
        if self._serving is not None:
            self._serving.release()

    async def _open(self) -> None:
        # A file that cannot be opened fails here, before aiosqlite starts a thread: after a failed
        # connect that thread answers its own stop whenever it gets to it, and a start-up that ends
        # at once has closed the loop by then (a traceback from the thread at exit).
        sqlite3.connect(self.path).close()
        conn = await aiosqlite.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute("PRAGMA busy_timeout = 5000")
            await self._migrate(conn)
            await self.writer.open()
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        await conn.execute(render(MIGRATIONS_TABLE, SQLITE))
        for version, statements in migrations(SQLITE):
            # Checked under the write lock: several processes may start on one file at once.
            await conn.execute("BEGIN IMMEDIATE")
            try:
                if version not in {row[0] for row in await conn.execute_fetchall(APPLIED)}:
                    for statement in statements:
                        await conn.execute(statement)
                    await conn.execute(SQLITE.sql(RECORD), (version, int(time.time())))
                    log.info("applied migration %s", version)
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
        for statement in triggers(SQLITE):  # IF NOT EXISTS: changes nothing once they are there
            await conn.execute(statement)

    async def close(self) -> None:
        """Commit queued writes, stop the writer, close the file and let go of the serving lock;
        idempotent."""
        try:
            await self.writer.close()
        finally:
            try:
                if self._conn is not None:
                    conn, self._conn = self._conn, None
                    await conn.close()
            finally:
                self._release_serving_lock()

    def _db(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise ServiceUnavailable("The database is not open")
        return self._conn

    def pool_usage(self) -> tuple[int, int] | None:
        """None: one writing connection, no pool."""
        return None

    async def ping(self) -> None:
        """Run a trivial query; unavailable too when the writer has stopped."""
        if not self.writer.running:
            raise ServiceUnavailable("The database writer is not running")
        await self._db().execute_fetchall("SELECT 1")

    async def grant(self, grant: TokenGrant, *, max_unused: int | None = None) -> None:
        """Record an issued token (and create or rename its user), unless refused."""
        await self.writer.write(_steps(OPS.grant(grant, max_unused)))

    async def award(self, claim: AwardClaim) -> Award:
        """Consume the token and raise the score, exactly once."""
        return await self.writer.write(_steps(in_period(claim.ends_ms, self.clock, OPS.award(claim))))

    async def held(self, *, status: str, after: int, limit: int) -> list[HeldAward]:
        """Held awards of a status after `after`, oldest first."""
        rows = await self._db().execute_fetchall(OPS.held_list, (status, after, limit))
        return [held_award(row) for row in rows]

    async def held_award(self, held_id: int) -> HeldAward | None:
        """One held award, or None."""
        for row in await self._db().execute_fetchall(OPS.held, (held_id,)):
            return held_award(row)
        return None

    async def decide(self, decision: Decision) -> tuple[HeldAward, Award | None]:
        """Decide a held award once, in the group commit."""
        return await self.writer.write(_undoable(OPS.decide(decision)))

    async def write_score(self, write: ScoreWrite) -> WriteOutcome:
        """Apply a trusted write, exactly once per Idempotency-Key."""
        return await self.writer.write(_undoable(in_period(write.ends_ms, self.clock, TRUSTED.write_score(write))))

    async def keep_answer(self, service: str, key: str, answer: str) -> None:
        """Keep a trusted write's first answer."""
        await self.writer.write(_steps(TRUSTED.keep_answer(service, key, answer)))

    async def attest(self, user_id: str, action_id: str, service: str, now_ms: int) -> int:
        """Record an attestation, once per user and action."""
        return await self.writer.write(_steps(OPS.attest(user_id, action_id, service, now_ms)))

    async def user(self, user_id: str) -> UserRecord | None:
        """One user's row, or None."""
        for row in await self._db().execute_fetchall(OPS.user, (user_id,)):
            return user_record(row)
        return None

    async def standings(self, board: str, period: str) -> list[Standing]:
        """Every user on one period of one board."""
        return [standing(row) for row in await self._db().execute_fetchall(OPS.standings, (board, period))]

    async def boards(self) -> list[tuple[str, str]]:
        """Every board in use."""
        return [(row[0], row[1]) for row in await self._db().execute_fetchall(CATALOG.boards)]

    async def retired_boards(self) -> list[tuple[str, str, int]]:
        """Every retired board."""
        return [(row[0], row[1], row[2]) for row in await self._db().execute_fetchall(CATALOG.retired_boards)]

    async def declare_boards(self, declared: dict[str, str]) -> list[str]:
        """Apply the configuration's boards; the ids of those replaced."""
        return await self.writer.write(_steps(CATALOG.declare(declared, now_ms())))

    async def create_board(self, board_id: str, settings: str, by: OperatorAct) -> None:
        """Add a board."""
        await self.writer.write(_steps(CATALOG.create_board(board_id, settings, by, now_ms())))

    async def change_board(self, board_id: str, settings: str, by: OperatorAct) -> None:
        """Replace a board's settings."""
        await self.writer.write(_steps(CATALOG.change_board(board_id, settings, by, now_ms())))

    async def retire_board(self, board_id: str, by: OperatorAct) -> None:
        """Retire a board."""
        await self.writer.write(_steps(CATALOG.retire(board_id, by, now_ms())))

    async def purge_keys(self, created_before_ms: int) -> int:
        """Forget old Idempotency-Keys, in chunks as `purge_tokens`."""
        return await self._purge_all(PURGE_KEYS, created_before_ms)

    async def purge_tokens(self, expired_before_ms: int) -> int:
        """Delete token rows past their expiry: an expired token is refused before the database.
        In chunks, each its own short write: a minute's tokens at once would hold the loop."""
        return await self._purge_all(PURGE, expired_before_ms)

    async def purge_notices(self, created_before_ms: int) -> int:
        """Delete notices made before this time, in chunks as `purge_tokens`."""
        return await self._purge_all(PURGE_NOTICES, created_before_ms)

    async def purge_attestations(self, created_before_ms: int) -> int:
        """Forget unspent attestations made before this time, in chunks as `purge_tokens`."""
        return await self._purge_all(PURGE_ATTESTATIONS, created_before_ms)

    async def _purge_all(self, statement: str, before_ms: int) -> int:
        total = 0
        while (count := await self.writer.write(_purge(statement, before_ms))) > 0:
            total += count
            if count < PURGE_CHUNK:
                break
        return total

    async def personal_data(self, user_id: str) -> Kept | None:
        """Every row kept about a user, or None for an unknown user."""
        return await self._read(read(PERSONAL, user_id))

    async def erase(self, user_id: str, pseudonym: str, now_ms: int) -> list[tuple[str, str]]:
        """Erase a user, in a savepoint of the group commit."""
        shelves: list[tuple[str, str]] = await self.writer.write(
            _in_savepoint(_row_steps(erase(PERSONAL, user_id, pseudonym, now_ms)))
        )
        return shelves

    async def audit_head(self) -> tuple[int, str]:
        """The audit chain's head, read on the reading connection."""
        db, steps = self._db(), head(CHAIN)
        try:
            query, args = next(steps)
            while True:
                query, args = steps.send([tuple(row) for row in await db.execute_fetchall(query, args)])
        except StopIteration as done:
            found: tuple[int, str] = done.value
            return found

    async def seal(self, limit: int) -> int:
        """Seal up to `limit` queued rows onto the audit chain, in the group commit (whose write
        lock makes this the only sealer of the file); how many were queued."""
        sealed: int = await self.writer.write(_row_steps(seal(CHAIN, limit=limit)))
        return sealed

    async def _moderate(self, steps: moderation.Steps[T]) -> T:
        """A moderation act, in a savepoint of the group commit."""
        return await self.writer.write(_in_savepoint(_row_steps(steps)))

    async def _read(self, steps: moderation.Steps[T]) -> T:
        """Run reading steps on the reading connection."""
        db = self._db()
        try:
            sql, args = next(steps)
            while True:
                rows: list[tuple[Any, ...]] = [tuple(row) for row in await db.execute_fetchall(sql, args)]
                sql, args = steps.send(rows)
        except StopIteration as done:
            answer: T = done.value
            return answer

    async def disqualify(self, act: ModerationAct) -> Places:
        """Disqualify a user; the board periods they have entries on."""
        return await self._moderate(moderation.set_disqualified(MODERATION, act, disqualified=True))

    async def reinstate(self, act: ModerationAct) -> Places:
        """Reinstate a user; the board periods they have entries on."""
        return await self._moderate(moderation.set_disqualified(MODERATION, act, disqualified=False))

    async def adjust(self, act: ModerationAct, where: BoardPeriod, *, create: bool) -> Corrected:
        """Correct a user's entry by `act.amount`."""
        return await self._moderate(moderation.adjust(MODERATION, act, where, create=create))

    async def remove_entry(self, act: ModerationAct, where: BoardPeriod) -> Removal:
        """Take a user's entry off one board period."""
        return await self._moderate(moderation.remove(MODERATION, act, where))

    async def wipe(self, act: ModerationAct, where: BoardPeriod) -> Removal:
        """Take every entry off one board period."""
        return await self._moderate(moderation.wipe(MODERATION, act, where))

    async def standings_of(self, user_id: str) -> list[tuple[BoardPeriod, Standing]]:
        """Every entry of a user who is not disqualified."""
        return await self._read(moderation.standings_of(MODERATION, user_id))

    async def disqualified(self) -> list[str]:
        """Every disqualified user."""
        return [row[0] for row in await self._db().execute_fetchall(MODERATION.disqualified)]

    async def user_history(self, user_id: str, *, after: int, limit: int) -> UserHistory | None:
        """A user's changes and the acts on them."""
        return await self._read(moderation.history(MODERATION, user_id, after=after, limit=limit))

    async def sweep_changes(self, cursor: int, before_ms: int) -> Swept:
        """Delete one window of old board changes (storage/retention.py), in the group commit."""
        return await self.writer.write(
            _in_savepoint(_row_steps(sweep_changes(RETENTION, cursor, before_ms, PURGE_CHUNK)))
        )

    async def sweep_awards(self, cursor: int, before_ms: int) -> Swept:
        """Delete one window of old awards nothing refers to (storage/retention.py), in the group commit."""
        return await self.writer.write(
            _in_savepoint(_row_steps(sweep_awards(RETENTION, cursor, before_ms, PURGE_CHUNK)))
        )

    async def add_notices(self, drafts: list[NoticeDraft], *, now_ms: int) -> list[Notice]:
        """Keep notices, in one write of the group commit (one statement for all of them: a write
        that passes 100 users keeps 100 notices)."""

        def write(db: sqlite3.Connection) -> list[Notice]:
            db.executemany(OPS.add_notice, [(d.user_id, d.type, d.data, now_ms) for d in drafts])
            # AUTOINCREMENT numbers each insert one past the highest number ever used, and this is
            # the only writer: the batch's numbers are the last ones, in order.
            (last,) = db.execute(LAST_NOTICE).fetchone()
            return [notice(d, last - len(drafts) + 1 + i, now_ms) for i, d in enumerate(drafts)]

        return await self.writer.write(write)

    async def trim_notices(self, user_ids: list[str], *, keep: int) -> int:
        """Delete these users' notices beyond their newest `keep`, in one write."""

        def write(db: sqlite3.Connection) -> int:
            return sum(db.execute(OPS.trim_notices, (user_id, keep - 1)).rowcount for user_id in user_ids)

        return await self.writer.write(write)

    async def notices(self, user_id: str, *, after: int, since_ms: int, keep: int) -> list[Notice]:
        """A user's kept notices after `after`, oldest first."""
        rows = await self._db().execute_fetchall(OPS.kept_notices, (user_id, since_ms, keep, after))
        return [kept_notice(row) for row in rows]
