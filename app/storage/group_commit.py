"""Group commit for one SQLite connection: writes queued while a batch commits share the next
batch's transaction, so one fsync serves many. It runs whatever writes it is given; what they
write is the store's business."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

from ..errors import ApiError, ServiceUnavailable
from ..logs import request_id
from ..metrics.tally import Histogram
from ..tasks import Background

log = logging.getLogger(__name__)

T = TypeVar("T")
# One write inside a batch's transaction. A write that refuses (raises ApiError) must leave
# nothing written: refusals come before its first write or undo what it wrote. (A savepoint per
# write would do that for it, at two more statements per write on the writer's thread.) A write
# that fails otherwise (a database error) fails alone: the batch is rolled back and runs again
# without it.
Write = Callable[[sqlite3.Connection], T]
_Queued = tuple[Write[Any], asyncio.Future[Any], str | None]  # the write, its waiter, its request

# A batch's statements run on the event loop (~10-35 us a write): 128 hold it ~4.5 ms at most.
MAX_BATCH = 128
LOCK_WAIT_MS = 5_000


class _WriteFailed(Exception):
    """A write of a batch failed in a way it does not refuse (a database error): the transaction
    is rolled back and the rest of the batch runs again without it."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


def _apply(db: sqlite3.Connection, writes: list[Write[Any]]) -> list[tuple[bool, Any]]:
    """Apply every write inside the open transaction; a refusal is that write's answer."""
    results: list[tuple[bool, Any]] = []
    for index, write in enumerate(writes):
        try:
            results.append((True, write(db)))
        except ApiError as exc:
            results.append((False, exc))
        except Exception as exc:
            raise _WriteFailed(index) from exc
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


def _connect(path: str, synchronous: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA synchronous = {synchronous}")
    # Room for a full batch's pages (the default is 2 MiB): a spill would write on the loop.
    db.execute("PRAGMA cache_size = -32768")
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA busy_timeout = 0")  # the loop never waits for a lock: see _begin_waiting
    return db


def _fail(queued: list[_Queued], error: Exception) -> None:
    for _, future, _ in queued:
        if not future.done():
            future.set_exception(error)


class GroupCommit:
    """The one writing connection of a SQLite file, and its batching loop.

    A batch's statements run on the event loop: each is a few microseconds of work on cached
    pages, while a hop to another thread per statement (the GIL handed back and forth) cost more
    than the statement. Waiting for the write lock (another process on the same file) and the
    commit's fsync happen on the writer's own thread."""

    def __init__(self, path: str, *, synchronous: Literal["FULL", "NORMAL"] = "FULL") -> None:
        self.path = path
        self.synchronous = synchronous
        # Called with each batch's size before its transaction begins (metrics, tests); if it
        # raises, the batch fails as a failed transaction would.
        self.on_batch: Callable[[int], None] | None = None
        self.round_trips = Histogram()  # seconds from each batch's BEGIN to its COMMIT (the fsync)
        self._db: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._pending: list[_Queued] = []
        self._wake = asyncio.Event()
        self._ended = asyncio.Event()
        self._task = Background("sqlite-writer", self._run)
        self._closing = False

    @property
    def running(self) -> bool:
        """Started, and neither stopped nor closed."""
        return self._task.running and not self._closing

    async def open(self) -> None:
        """Connect (on the writer's thread) and start the loop."""
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        try:
            self._db = await self._off_loop(_connect, self.path, self.synchronous)
        except BaseException:
            self._thread.shutdown(wait=False)
            raise
        self._task.start()

    async def write(self, write: Write[T]) -> T:
        """Run `write` in the next batch's transaction and return its answer (or raise its refusal);
        ServiceUnavailable when the transaction fails or the writer is not running."""
        if not self.running:
            raise ServiceUnavailable("The database is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((write, future, request_id.get()))
        self._wake.set()
        return await future

    async def stop(self) -> None:
        """Stop at once: the batch under way is abandoned (rolled back unless its COMMIT was
        already under way) and every waiting write fails with ServiceUnavailable; `close`, by
        contrast, commits them first."""
        await self._task.stop()

    async def close(self) -> None:
        """Commit everything queued, stop and disconnect; idempotent."""
        self._closing = True
        try:
            if self._task.running:
                self._wake.set()
                try:
                    await self._ended.wait()  # the loop returns once everything queued is committed
                finally:
                    await self._task.stop()  # ended already, unless this wait was cancelled
        finally:
            try:
                if self._db is not None:
                    db, self._db = self._db, None
                    await self._off_loop(db.close)  # after any rollback still queued on the thread
            finally:
                if self._thread is not None:
                    self._thread.shutdown(wait=False)  # idle now: its thread ends at once

    async def _run(self) -> None:
        # Everything that arrives while one batch commits goes into the next: one fsync serves
        # many writes, with no waiting window when the load is light.
        batch: list[_Queued] = []
        try:
            while not self._closing or self._pending:
                await self._wake.wait()
                self._wake.clear()
                while self._pending:
                    batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                    try:
                        if self.on_batch is not None:
                            self.on_batch(len(batch))
                        results = await self._transaction([write for write, _, _ in batch])
                    except _WriteFailed as failed:
                        # One write's error is that write's alone: the others go in the next batch,
                        # first in line, so that nothing of the failed transaction is lost.
                        _, future, rid = batch.pop(failed.index)
                        log.error(
                            "a write failed; the rest of its batch runs again",
                            exc_info=failed.__cause__,
                            extra={"correlationIds": [rid]},
                        )
                        if not future.done():
                            future.set_exception(ServiceUnavailable("The database write failed"))
                        self._pending[:0], batch = batch, []
                        continue
                    except Exception:  # the whole transaction failed: tell every waiter, and no more
                        # The cause stays in the log, with the requests it failed.
                        log.exception(
                            "write batch of %d failed",
                            len(batch),
                            extra={"correlationIds": [rid for _, _, rid in batch]},
                        )
                        _fail(batch, ServiceUnavailable("The database write failed"))
                        continue
                    for (_, future, _), (ok, value) in zip(batch, results, strict=True):
                        if future.done():
                            continue
                        if ok:
                            future.set_result(value)
                        else:
                            future.set_exception(value)
        finally:  # ended (stopped, or closed): nobody may wait for ever
            _fail([*batch, *self._pending], ServiceUnavailable("The database writer stopped"))
            self._pending = []
            self._ended.set()

    async def _transaction(self, writes: list[Write[Any]]) -> list[tuple[bool, Any]]:
        db, thread = self._db, self._thread
        if db is None or thread is None:
            raise ServiceUnavailable("The database is not open")
        started = time.perf_counter()
        try:
            # Free unless another process writes to the file: then wait on the thread, not here.
            if not _begin_at_once(db):
                await self._off_loop(_begin_waiting, db)
            results = _apply(db, writes)
            await self._off_loop(_commit, db)
        except Exception:
            # Queued after a BEGIN or COMMIT still under way (one thread): it sees what they did.
            await self._off_loop(_rollback, db)
            raise
        except BaseException:
            # Stopped: the rollback is queued the same way but not awaited, so that the waiters
            # hear at once, not when another process lets go of the lock; `close` runs after it.
            thread.submit(_rollback, db)
            raise
        self.round_trips.observe(time.perf_counter() - started)
        return results

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        # One thread, so these calls happen in the order they were made.
        assert self._thread is not None, "opened first"
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)
