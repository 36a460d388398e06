"""Backups of the embedded SQLite file: an online copy taken while servers write to it, and a
restore that refuses while any process has the file open.

How a restore knows the file is in use, two ways:
- **The serving lock**: every server holds a shared `flock` on `<database>.lock` from before it
  opens the database until it closes it (the kernel drops it when a process dies, `kill -9`
  too). A restore takes it exclusively, without waiting: refused if anyone holds it; while the
  restore holds it, a starting server waits (see `SqliteStore.open`).
- **SQLite's own mark**: every process with a WAL-mode connection holds a POSIX read lock on the
  dead-man-switch byte (128) of `<database>-shm` (SQLite's WAL-index format). A restore asks the
  kernel (F_GETLK) whether anyone does: this also catches a `sqlite3` shell, or any other program,
  and names a process id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import sqlite3
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .schema import APPLIED, SQLITE, migrations

LOCK_SUFFIX = ".lock"
COMPANIONS = ("-wal", "-shm", "-journal")  # SQLite's files beside a database
TABLES = ("users", "action_tokens", "score_history")
SHM_DEAD_MAN_SWITCH = 128  # byte of the -shm file every process with a WAL connection read-locks
# Every user whose score is not the sum of their history: none in a database the service wrote
# (schema version 1, before boards).
SCORE_MISMATCHES = (
    "SELECT count(*) FROM users u WHERE u.score != "
    "(SELECT coalesce(sum(h.score_change), 0) FROM score_history h WHERE h.user_id = u.id)"
)
# From version 2: every board entry whose value is not what the history row that reached it (its
# `seq`) wrote, whatever the board's operator.
ENTRY_MISMATCHES = (
    "SELECT count(*) FROM board_entries e LEFT JOIN board_history h ON h.id = e.seq AND h.board = e.board "
    "AND h.period = e.period AND h.user_id = e.user_id WHERE h.id IS NULL OR h.new_score != e.score"
)


class BackupError(Exception):
    """A backup or restore that did not happen, phrased as one line saying why."""


@dataclass(frozen=True)
class Summary:
    """What a checked database file holds."""

    path: Path
    size: int
    schema_version: int
    users: int
    awards: int

    def __str__(self) -> str:
        return (
            f"{self.size:,} bytes, schema version {self.schema_version}, {self.users:,} users, "
            f"{self.awards:,} awards, integrity ok"
        )


class ServingLock:
    """`<database>.lock`: shared by every server on the file, exclusive for a restore."""

    def __init__(self, database: str | Path) -> None:
        self.path = Path(f"{database}{LOCK_SUFFIX}")
        self._fd: int | None = None

    def acquire(self, *, exclusive: bool) -> bool:
        """Take the lock without waiting; False if it is held the other way."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Let go (closing the descriptor drops the flock); idempotent."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def connected_pid(database: str | Path) -> int | None:
    """The id of a process holding a SQLite WAL connection to `database` (another than this one),
    or None: asked of the kernel with F_GETLK on the -shm file's dead-man-switch byte. Linux only
    (the layout of `struct flock`); None elsewhere."""
    if sys.platform != "linux" or struct.calcsize("P") != 8:
        return None
    try:
        fd = os.open(f"{database}-shm", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        asked = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, SHM_DEAD_MAN_SWITCH, 1, 0)
        kind, _, _, _, pid = struct.unpack("hhqqi", fcntl.fcntl(fd, fcntl.F_GETLK, asked))
    finally:
        os.close(fd)
    return None if kind == fcntl.F_UNLCK else pid


def read_only(path: Path) -> sqlite3.Connection:
    """A connection that can neither create nor change the file (nor checkpoint it on close)."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    db.execute("PRAGMA busy_timeout = 5000")
    return db


def _copy(source: Path, target: Path) -> None:
    """SQLite's online backup of `source` into a new file `target`, as one step: one read
    transaction, so in WAL mode a consistent snapshot while writers go on. The copy uses the
    rollback journal: one self-contained file (the server turns WAL on again when it opens it)."""
    with contextlib.closing(read_only(source)) as src, contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode = DELETE")


def _fsync(path: Path, *, directory: bool = False) -> None:
    fd = os.open(path, (os.O_RDONLY | os.O_DIRECTORY) if directory else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check(path: Path, *, name: Path | None = None) -> Summary:
    """Open a copy read-only and prove it is a whole Scoreboard database this code can serve:
    SQLite's integrity check, the schema's migrations (none newer than this code knows), the
    foreign keys, and every score equal to the sum of its history. Refusals name `name` (the file
    the copy was made from), or `path`."""
    try:
        return _check(path)
    except BackupError as exc:
        raise BackupError(f"{name or path}: {exc}") from None


def _check(path: Path) -> Summary:
    try:
        with contextlib.closing(read_only(path)) as db:
            problems = [line for row in db.execute("PRAGMA integrity_check(3)") for line in row[0].splitlines()]
            if problems != ["ok"]:
                raise BackupError(f"fails SQLite's integrity check: {'; '.join(problems[:3])}")
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "schema_migrations" not in tables:
                raise BackupError("not a Scoreboard database (no schema_migrations table)")
            applied = sorted(row[0] for row in db.execute(APPLIED))
            known = [version for version, _ in migrations(SQLITE)]
            if not applied or applied != known[: len(applied)]:
                raise BackupError(
                    f"schema versions {applied}, this Scoreboard knows {known}: "
                    "restore it with the version that wrote it"
                )
            if missing := [t for t in TABLES if t not in tables]:
                raise BackupError(f"not a Scoreboard database (no {', '.join(missing)} table)")
            if db.execute("PRAGMA foreign_key_check").fetchone() is not None:
                raise BackupError("rows refer to users that are not there (foreign_key_check)")
            if applied[-1] < 2 and (mismatched := db.execute(SCORE_MISMATCHES).fetchone()[0]):
                raise BackupError(f"{mismatched} users' scores differ from the sum of their history")
            if applied[-1] >= 2 and (mismatched := db.execute(ENTRY_MISMATCHES).fetchone()[0]):
                raise BackupError(f"{mismatched} board entries differ from the history row that wrote them")
            users = db.execute("SELECT count(*) FROM users").fetchone()[0]
            awards = db.execute("SELECT count(*) FROM score_history").fetchone()[0]
    except sqlite3.DatabaseError as exc:  # not a database, or damaged beyond the check
        raise BackupError(f"not a readable SQLite database ({exc})") from None
    return Summary(path=path, size=path.stat().st_size, schema_version=applied[-1], users=users, awards=awards)


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _refuse_overlap(database: Path, other: Path) -> None:
    """`other` must be neither the database nor one of its companion files."""
    for name in ("", *COMPANIONS, LOCK_SUFFIX):
        if _same_file(other, Path(f"{database}{name}")):
            raise BackupError(f"{other}: that is the database's own file ({database}{name})")


@contextlib.contextmanager
def _staged(beside: Path, what: str) -> Iterator[Path]:
    """A new file's name next to `beside` (same file system: renamed into place), removed unless
    it was moved."""
    staged = beside.with_name(f".{beside.name}.{what}-{os.getpid()}")
    for name in ("", *COMPANIONS):
        Path(f"{staged}{name}").unlink(missing_ok=True)
    try:
        yield staged
    finally:
        for name in ("", *COMPANIONS):
            Path(f"{staged}{name}").unlink(missing_ok=True)


def backup(database: str | Path, target: str | Path, *, overwrite: bool = False) -> Summary:
    """Copy the live database to `target` while servers write to it, check the copy, and only
    then put it at `target` (never a partial file there). Refuses an existing `target` unless
    `overwrite`."""
    source, dest = Path(database), Path(target)
    if not source.is_file():
        raise BackupError(f"{source}: no database there (storage.sqlite_path / SCOREBOARD_SQLITE_PATH)")
    _refuse_overlap(source, dest)
    if dest.is_dir():
        raise BackupError(f"{dest}: is a directory; name the backup file")
    if dest.exists() and not dest.is_file():  # --force or not: /dev/null replaced by a file is no backup
        raise BackupError(f"{dest}: not a regular file (a device, a pipe or a socket); name the backup file")
    if dest.exists() and not overwrite:
        raise BackupError(f"{dest}: exists; give --force to overwrite it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock = ServingLock(source)
    if not lock.acquire(exclusive=False):
        raise BackupError(f"{source}: a restore is under way (it holds {lock.path}); back up after it")
    try:
        with _staged(dest, "partial") as staged:
            try:
                _copy(source, staged)
            except sqlite3.DatabaseError as exc:
                raise BackupError(f"{source}: could not be copied ({exc})") from None
            summary = check(staged, name=source)
            _fsync(staged)
            if overwrite:
                os.replace(staged, dest)
            else:
                try:
                    os.link(staged, dest)  # fails if a file appeared there meanwhile: never overwritten
                except FileExistsError:
                    raise BackupError(f"{dest}: exists; give --force to overwrite it") from None
            _fsync(dest.parent, directory=True)
    finally:
        lock.release()
    return dataclasses.replace(summary, path=dest)


@dataclass(frozen=True)
class Restored:
    """What a restore did."""

    summary: Summary  # of the restored file, at the database's path
    source: Path
    aside: Path | None  # where the replaced database went; None when there was none


def _in_use(database: Path, lock: ServingLock) -> str | None:
    """Why the database cannot be replaced now, or None with the serving lock held exclusively
    (no server can open the file until it is released) and no process connected to the file."""
    if not lock.acquire(exclusive=True):
        pid = connected_pid(database)
        by = f" (process {pid})" if pid is not None else ""
        return f"a server is using it{by}: it holds {lock.path}; stop every server on this file first"
    if (pid := connected_pid(database)) is not None:
        lock.release()
        return f"process {pid} has it open in SQLite; stop it first"
    return None


def restore(source: str | Path, database: str | Path) -> Restored:
    """Replace the database with a checked copy of the backup `source`, while no process has it
    open; the replaced files (with their WAL, if any) are kept beside it as
    `<database>.replaced-<UTC time>`."""
    backup_file, target = Path(source), Path(database)
    if not backup_file.is_file():
        raise BackupError(f"{backup_file}: no such backup file")
    _refuse_overlap(target, backup_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _staged(target, "restoring") as staged:
        try:
            _copy(backup_file, staged)  # read as SQLite: a backup left in WAL mode comes whole
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{backup_file}: not a readable SQLite database ({exc})") from None
        summary = check(staged, name=backup_file)
        _fsync(staged)
        lock = ServingLock(target)
        if (busy := _in_use(target, lock)) is not None:
            raise BackupError(f"{target}: {busy}; nothing was changed")
        try:
            aside = _set_aside(target)
            os.replace(staged, target)
            _fsync(target.parent, directory=True)
        finally:
            lock.release()
    return Restored(summary=dataclasses.replace(summary, path=target), source=backup_file, aside=aside)


def _set_aside(database: Path) -> Path | None:
    """Move the database and its companions (a WAL holds committed transactions) to one new name."""
    present = [name for name in ("", *COMPANIONS) if Path(f"{database}{name}").exists()]
    if not present:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = database.with_name(f"{database.name}.replaced-{stamp}")
    n = 1
    while any(Path(f"{aside}{name}").exists() for name in ("", *COMPANIONS)):
        n += 1
        aside = database.with_name(f"{database.name}.replaced-{stamp}-{n}")
    for name in present:
        os.rename(f"{database}{name}", f"{aside}{name}")
    return aside
