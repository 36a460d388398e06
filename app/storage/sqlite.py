"""SQLite store (aiosqlite, WAL): one writer connection, concurrent writes group-committed."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiosqlite

from ..errors import ActionAlreadyCompleted, ApiError, InvalidToken, ServiceUnavailable, TokenAlreadyUsed
from ..logs import request_id
from ..records import Award, AwardClaim, TokenGrant, UserRecord
from . import check_unused, refusal

log = logging.getLogger(__name__)

# Versioned migrations; each runs once, in order, recorded in schema_migrations.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE users (
            id TEXT PRIMARY KEY,
            username TEXT NOT NULL,
            score INTEGER NOT NULL DEFAULT 0,
            score_seq INTEGER,
            last_score_update INTEGER,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        );
        CREATE INDEX idx_users_score ON users (score DESC, score_seq);
        CREATE TABLE action_tokens (
            nonce TEXT PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            user_id TEXT NOT NULL REFERENCES users (id),
            action_type TEXT NOT NULL,
            action_id TEXT NOT NULL,
            score_increment INTEGER NOT NULL,
            issued_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            used_at INTEGER
        );
        CREATE INDEX idx_action_tokens_user ON action_tokens (user_id);
        CREATE INDEX idx_action_tokens_expires ON action_tokens (expires_at);
        CREATE TABLE score_history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            user_id TEXT NOT NULL REFERENCES users (id),
            action_type TEXT NOT NULL,
            action_id TEXT NOT NULL,
            score_change INTEGER NOT NULL,
            previous_score INTEGER NOT NULL,
            new_score INTEGER NOT NULL,
            token_nonce TEXT NOT NULL UNIQUE,
            action_token_hash TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            UNIQUE (user_id, action_id)
        );
        CREATE INDEX idx_score_history_created ON score_history (created_at);
        """,
    ),
]

# A batch's statements run on the event loop (~10-35 us an op): 128 ops hold it ~4.5 ms at most.
MAX_BATCH = 128

# One write inside a batch's transaction. An op that refuses (raises ApiError) must leave
# nothing written: refusals come before its first write or undo what it wrote. (A savepoint per
# op would do that for it, at two more statements per award on the writer's thread.)
_Op = Callable[[sqlite3.Connection], Any]
T = TypeVar("T")
LOCK_WAIT_MS = 5_000
PURGE_CHUNK = 200  # rows deleted from five b-trees on the loop: 1.3 ms a chunk (2.2 ms at most) here


def _upsert_user(db: sqlite3.Connection, user_id: str, username: str, now: int) -> None:
    db.execute(
        "INSERT INTO users (id, username, created_at, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET username = excluded.username, updated_at = excluded.updated_at "
        "WHERE users.username IS NOT excluded.username",
        (user_id, username, now, now),
    )


def _grant(grant: TokenGrant, max_unused: int | None) -> _Op:
    def op(db: sqlite3.Connection) -> None:
        done = db.execute(
            "SELECT 1 FROM score_history WHERE user_id = ? AND action_id = ?", (grant.user_id, grant.action_id)
        ).fetchone()
        if done:
            raise ActionAlreadyCompleted()
        if max_unused is not None:  # under the write lock, so grants of one user cannot overtake each other
            held, first_expiry = db.execute(
                "SELECT COUNT(*), MIN(expires_at) FROM action_tokens "
                "WHERE user_id = ? AND used_at IS NULL AND expires_at > ?",
                (grant.user_id, grant.issued_ms),
            ).fetchone()
            check_unused(held, first_expiry, now_ms=grant.issued_ms, max_unused=max_unused)
        _upsert_user(db, grant.user_id, grant.username, grant.issued_ms)
        db.execute(
            "INSERT INTO action_tokens (nonce, token_hash, user_id, action_type, action_id, score_increment, "
            "issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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

    return op


def _refusal(db: sqlite3.Connection, claim: AwardClaim) -> ApiError:
    """Why the token could not be consumed (the slow path: only refused awards come here)."""
    row = db.execute(
        "SELECT user_id, action_type, action_id, used_at, expires_at FROM action_tokens WHERE nonce = ?",
        (claim.nonce,),
    ).fetchone()
    return refusal(claim, row)


def _not_recorded(db: sqlite3.Connection, claim: AwardClaim) -> ApiError:
    """Why the history row was not inserted (the slow path): a replay or a repeated action."""
    if db.execute("SELECT 1 FROM score_history WHERE token_nonce = ?", (claim.nonce,)).fetchone():
        return TokenAlreadyUsed()
    if db.execute("SELECT 1 FROM users WHERE id = ?", (claim.user_id,)).fetchone() is None:
        return InvalidToken("Action token is not known to this server")  # its user row comes with it
    return ActionAlreadyCompleted()


def _award(claim: AwardClaim) -> _Op:
    def op(db: sqlite3.Connection) -> Award:
        # The writer holds the database's write lock for the whole batch (BEGIN IMMEDIATE), so
        # these statements cannot interleave with another writer. Three statements, each
        # answering what the next needs (RETURNING); a refusal writes nothing (see _Op).
        token = db.execute(
            "UPDATE action_tokens SET used_at = ? WHERE nonce = ? AND user_id = ? AND action_type = ? "
            "AND action_id = ? AND used_at IS NULL AND issued_at <= ? AND expires_at > ? "
            "RETURNING score_increment, token_hash",
            (
                claim.now_ms,
                claim.nonce,
                claim.user_id,
                claim.action_type,
                claim.action_id,
                claim.now_ms - claim.min_elapsed_ms,
                claim.now_ms,
            ),
        ).fetchone()
        if token is None:
            raise _refusal(db, claim)
        action_type = claim.action_type
        increment, token_hash = token
        history = db.execute(
            "INSERT INTO score_history (user_id, action_type, action_id, score_change, previous_score, "
            "new_score, token_nonce, action_token_hash, created_at) "
            "SELECT id, ?, ?, ?, score, score + ?, ?, ?, ? FROM users WHERE id = ? "
            "ON CONFLICT DO NOTHING RETURNING id, previous_score",
            (
                action_type,
                claim.action_id,
                increment,
                increment,
                claim.nonce,
                token_hash,
                claim.now_ms,
                claim.user_id,
            ),
        ).fetchone()
        if history is None:
            db.execute("UPDATE action_tokens SET used_at = NULL WHERE nonce = ?", (claim.nonce,))
            raise _not_recorded(db, claim)
        seq, previous = history
        db.execute(
            "UPDATE users SET score = ?, score_seq = ?, last_score_update = ?, updated_at = ?, username = ? "
            "WHERE id = ?",
            (previous + increment, seq, claim.now_ms, claim.now_ms, claim.username, claim.user_id),
        )
        return Award(
            user_id=claim.user_id,
            username=claim.username,
            action_type=action_type,
            action_id=claim.action_id,
            previous_score=previous,
            new_score=previous + increment,
            score_increment=increment,
            seq=seq,
            awarded_ms=claim.now_ms,
        )

    return op


def _apply(db: sqlite3.Connection, ops: list[_Op]) -> list[tuple[bool, Any]]:
    """Apply every op inside the open transaction; a refusal is that op's answer."""
    results: list[tuple[bool, Any]] = []
    for op in ops:
        try:
            results.append((True, op(db)))
        except ApiError as exc:
            results.append((False, exc))
    return results


def _begin_at_once(db: sqlite3.Connection) -> bool:
    """BEGIN IMMEDIATE if the write lock is free (no waiting: busy_timeout is 0); False if not."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
            raise
        return False
    return True


def _begin_waiting(db: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, waiting up to 5 s while another process holds the write lock."""
    db.execute(f"PRAGMA busy_timeout = {LOCK_WAIT_MS}")
    try:
        db.execute("BEGIN IMMEDIATE")
    finally:
        db.execute("PRAGMA busy_timeout = 0")


def _commit(db: sqlite3.Connection) -> None:
    db.execute("COMMIT")


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        db.execute("ROLLBACK")


def _connect_writer(path: str, synchronous: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA synchronous = {synchronous}")
    # Room for a full batch's pages (the default is 2 MiB): a spill would write on the loop.
    db.execute("PRAGMA cache_size = -32768")
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA busy_timeout = 0")  # the loop never waits for a lock: see _begin_waiting
    return db


class SqliteStore:
    """The embedded system of record: a WAL-mode SQLite file written by one connection.

    Writes are group-committed. A batch's statements run on the event loop: each is a few
    microseconds of work on cached pages, while a hop to another thread per statement (the GIL
    handed back and forth) cost more than the statement. Waiting for the write lock (another
    process on the same file) and the commit's fsync happen on the writer's own thread. Reads
    use a second connection on aiosqlite's thread, so a long one (a rebuild) never holds up
    the loop; WAL lets them run beside the writer."""

    def __init__(self, path: str, *, synchronous: Literal["FULL", "NORMAL"] = "FULL") -> None:
        self.path = path
        self.synchronous = synchronous
        self._conn: aiosqlite.Connection | None = None
        self._writer_db: sqlite3.Connection | None = None
        self._writer_thread: ThreadPoolExecutor | None = None
        self._pending: list[tuple[_Op, asyncio.Future[Any], str | None]] = []  # op, its waiter, its request
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False

    async def open(self) -> None:
        """Open the file (creating its folder), set WAL and the sync level, migrate."""
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute("PRAGMA busy_timeout = 5000")
            await self._migrate(conn)
        except BaseException:
            await conn.close()
            raise
        self._writer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        try:
            self._writer_db = await self._off_loop(_connect_writer, self.path, self.synchronous)
        except BaseException:
            self._writer_thread.shutdown(wait=False)
            await conn.close()
            raise
        self._conn = conn
        self._writer = asyncio.create_task(self._write_loop(), name="sqlite-writer")

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
        )
        for version, sql in MIGRATIONS:
            # Checked under the write lock: several processes may start on one file at once.
            await conn.execute("BEGIN IMMEDIATE")
            try:
                done = await conn.execute_fetchall("SELECT 1 FROM schema_migrations WHERE version = ?", (version,))
                if not done:
                    for statement in (s for s in sql.split(";") if s.strip()):
                        await conn.execute(statement)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, strftime('%s', 'now'))",
                        (version,),
                    )
                    log.info("applied migration %s", version)
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        """Finish queued writes, stop the writer and close the file; idempotent."""
        self._closing = True
        try:
            if self._writer is not None:
                writer, self._writer = self._writer, None
                self._wake.set()
                await writer  # it returns once everything queued is committed
        finally:
            try:
                if self._writer_db is not None:
                    writer_db, self._writer_db = self._writer_db, None
                    await self._off_loop(writer_db.close)
            finally:
                if self._writer_thread is not None:
                    self._writer_thread.shutdown(wait=False)  # idle now: its thread ends at once
                if self._conn is not None:
                    conn, self._conn = self._conn, None
                    await conn.close()

    def _db(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise ServiceUnavailable("The database is not open")
        return self._conn

    async def ping(self) -> None:
        """Run a trivial query; unavailable too when the writer has stopped."""
        if self._writer is None or self._writer.done():
            raise ServiceUnavailable("The database writer is not running")
        await self._db().execute_fetchall("SELECT 1")

    async def _write(self, op: _Op) -> Any:
        if self._writer is None or self._writer.done() or self._closing:
            raise ServiceUnavailable("The database is not open")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future, request_id.get()))
        self._wake.set()
        return await future

    async def _write_loop(self) -> None:
        # Everything that arrives while one batch commits goes into the next: one fsync
        # serves many awards, with no waiting window when the load is light.
        while not self._closing or self._pending:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                ops = [op for op, _, _ in batch]
                try:
                    results = await self._run(ops)
                except Exception:  # the whole transaction failed: tell every waiter, and no more
                    # The cause stays in the log, with the requests it failed.
                    log.exception(
                        "write batch of %d failed", len(ops), extra={"correlationIds": [rid for _, _, rid in batch]}
                    )
                    for _, future, _ in batch:
                        if not future.done():
                            future.set_exception(ServiceUnavailable("The database write failed"))
                    continue
                except BaseException:  # the writer itself is cancelled: nobody may wait for ever
                    stopped = ServiceUnavailable("The database writer stopped")
                    for _, future, _ in [*batch, *self._pending]:
                        if not future.done():
                            future.set_exception(stopped)
                    self._pending = []
                    raise
                for (_, future, _), (ok, value) in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        # One thread, so these calls happen in the order they were made.
        assert self._writer_thread is not None, "opened first"
        return await asyncio.get_running_loop().run_in_executor(self._writer_thread, fn, *args)

    async def _run(self, ops: list[_Op]) -> list[tuple[bool, Any]]:
        db = self._writer_db
        if db is None:
            raise ServiceUnavailable("The database is not open")
        try:
            # Free unless another process writes to the file: then wait on the thread, not here.
            if not _begin_at_once(db):
                await self._off_loop(_begin_waiting, db)
            results = _apply(db, ops)
            await self._off_loop(_commit, db)
        except BaseException:
            # Queued after a BEGIN or COMMIT still under way (one thread): it sees what they did.
            await self._off_loop(_rollback, db)
            raise
        return results

    async def grant(self, grant: TokenGrant, *, max_unused: int | None = None) -> None:
        """Record an issued token (and create or rename its user), unless refused."""
        await self._write(_grant(grant, max_unused))

    async def award(self, claim: AwardClaim) -> Award:
        """Consume the token and raise the score, exactly once."""
        result: Award = await self._write(_award(claim))
        return result

    async def user(self, user_id: str) -> UserRecord | None:
        """One user's row, or None."""
        rows = await self._db().execute_fetchall(
            "SELECT id, username, score, score_seq, last_score_update FROM users WHERE id = ?", (user_id,)
        )
        for row in rows:
            return UserRecord(user_id=row[0], username=row[1], score=row[2], seq=row[3], updated_ms=row[4])
        return None

    async def standings(self) -> list[UserRecord]:
        """Every user with at least one award."""
        rows = await self._db().execute_fetchall(
            "SELECT id, username, score, score_seq, last_score_update FROM users WHERE score_seq IS NOT NULL"
        )
        return [UserRecord(user_id=r[0], username=r[1], score=r[2], seq=r[3], updated_ms=r[4]) for r in rows]

    async def purge_tokens(self, expired_before_ms: int) -> int:
        """Delete token rows past their expiry: an expired token is refused before the database.
        In chunks, each its own short write: a minute's tokens at once would hold the loop."""

        def op(db: sqlite3.Connection) -> int:
            return db.execute(
                "DELETE FROM action_tokens WHERE rowid IN "
                "(SELECT rowid FROM action_tokens WHERE expires_at < ? LIMIT ?)",
                (expired_before_ms, PURGE_CHUNK),
            ).rowcount

        total = 0
        while (count := await self._write(op)) > 0:
            total += count
            if count < PURGE_CHUNK:
                break
        return total
