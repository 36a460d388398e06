"""What `run.py backup` and `run.py restore` refuse, each in one line, changing nothing: an existing
backup file, the database's own files, PostgreSQL, a backup that is damaged, foreign, newer or
half-written, and a database some process has open. How a server and a restore keep out of each
other's way: the serving lock (`<database>.lock`) and SQLite's own lock on the -shm file."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import run
from app.errors import InvalidToken, TokenAlreadyUsed
from app.storage.backup import ServingLock, Summary, connected_pid
from app.storage.schema import SQLITE, migrations
from app.storage.sqlite import SqliteStore

from .stores import claim, grant

KNOWN = [version for version, _ in migrations(SQLITE)]  # every migration this Scoreboard has

CONFIG = "[actions.COMPLETE_QUEST]\nscore = 100\n"


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The configured database's path (not created yet); the commands' environment points at it."""
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    database = tmp_path / "data" / "scoreboard.db"
    for name in ("SCOREBOARD_REDIS_URL", "SCOREBOARD_DATABASE_URL", "SCOREBOARD_JWT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SCOREBOARD_ENV", "production")  # no secrets set: backups need none
    monkeypatch.setenv("SCOREBOARD_CONFIG", str(config))
    monkeypatch.setenv("SCOREBOARD_SQLITE_PATH", str(database))
    return database


async def _fill(path: Path, awards: int, *, user: str = "u") -> None:
    store = SqliteStore(str(path))
    await store.open()
    try:
        for i in range(awards):
            await store.grant(grant(f"{user}-{i}", user=user, action=f"{user}-a{i}"))
            await store.award(claim(f"{user}-{i}", user=user, action=f"{user}-a{i}"))
    finally:
        await store.close()


def _awards(path: Path) -> int:
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
        count: int = db.execute("SELECT count(*) FROM score_history").fetchone()[0]
    return count


def _command(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _leftovers(folder: Path) -> list[str]:
    """Staged copies that were not cleaned up."""
    return [p.name for p in folder.iterdir() if ".partial-" in p.name or ".restoring-" in p.name]


async def test_backup_refuses_an_existing_file_unless_forced(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _fill(live, 3)
    target = tmp_path / "backups" / "one.db"  # its folder is made
    code, out, err = _command(capsys, "backup", str(target))
    assert code == 0 and err == "" and out.count("\n") == 1
    assert (
        out.startswith(f"backup: wrote {target}")
        and f"schema version {KNOWN[-1]}, 1 users, 3 awards, integrity ok" in out
    )
    with sqlite3.connect(target) as db:  # one self-contained file
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    await _fill(live, 5, user="v")
    code, out, err = _command(capsys, "backup", str(target))
    assert (code, out) == (1, "") and err == f"backup: {target}: exists; give --force to overwrite it\n"
    assert _awards(target) == 3
    code, out, _ = _command(capsys, "backup", str(target), "--force")
    assert code == 0 and "2 users, 8 awards" in out and _awards(target) == 8
    assert _leftovers(target.parent) == []
    # Not even --force puts a file where a device, a pipe or a socket is (as root: /dev/null).
    pipe = tmp_path / "backups" / "pipe.db"
    os.mkfifo(pipe)
    code, out, err = _command(capsys, "backup", str(pipe), "--force")
    assert (code, out) == (1, "")
    assert err == f"backup: {pipe}: not a regular file (a device, a pipe or a socket); name the backup file\n"
    assert stat.S_ISFIFO(pipe.stat().st_mode) and _leftovers(pipe.parent) == []


async def test_backup_refuses_the_database_itself_and_a_missing_one(
    live: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _command(capsys, "backup", str(live.parent / "copy.db"))
    assert code == 1 and err == f"backup: {live}: no database there (storage.sqlite_path / SCOREBOARD_SQLITE_PATH)\n"
    assert not live.exists()
    await _fill(live, 1)
    for own in ("", "-wal", ".lock"):
        code, _, err = _command(capsys, "backup", f"{live}{own}", "--force")
        assert code == 1 and "that is the database's own file" in err
    assert _awards(live) == 1


def test_backup_of_a_file_that_is_no_database_says_so(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live.parent.mkdir()
    live.write_bytes(b"not a database" * 500)
    code, out, err = _command(capsys, "backup", str(tmp_path / "copy.db"))
    assert (code, out) == (1, "") and err == f"backup: {live}: could not be copied (file is not a database)\n"
    assert not (tmp_path / "copy.db").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_postgres_is_backed_up_with_its_own_tools(
    live: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    monkeypatch.setenv("SCOREBOARD_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    code, out, err = _command(capsys, command, str(tmp_path / "x.db"))
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith(f"{command}: storage.database_url is set") and ("pg_dump" in err or "pg_restore" in err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def _damaged(good: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    """Backups restore must refuse, and what it says about each."""
    folder.mkdir()
    cases: dict[str, tuple[Path, str]] = {}

    def variant(name: str, expected: str, sql: str = "") -> Path:
        path = folder / f"{name}.db"
        shutil.copy(good, path)
        if sql:
            with sqlite3.connect(path) as db:
                db.executescript(sql)
        cases[name] = (path, expected)
        return path

    (folder / "garbage.db").write_bytes(b"not a database at all" * 100)
    cases["garbage"] = (folder / "garbage.db", "not a readable SQLite database")
    foreign = folder / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE t (x)")
    cases["foreign"] = (foreign, "not a Scoreboard database (no schema_migrations table)")
    variant(
        "newer",
        f"schema versions {[*KNOWN, 99]}, this Scoreboard knows {KNOWN}",
        "INSERT INTO schema_migrations VALUES (99, 0);",
    )
    variant(
        "half",
        "1 board entries differ from the history row that wrote them",
        "UPDATE board_entries SET score = score + 1;",
    )
    torn = variant("torn", "fails SQLite's integrity check")
    data = bytearray(torn.read_bytes())
    page = 4096
    for at in range(2 * page, len(data) - page, page):  # every page but the first and the last: b-trees torn
        data[at + 8 : at + 64] = b"\xff" * 56
    torn.write_bytes(bytes(data))
    return cases


async def test_restore_refuses_a_damaged_foreign_newer_or_half_written_backup(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.db"
    await _fill(good, 40)
    await _fill(live, 2)
    for name, (path, expected) in _damaged(good, tmp_path / "bad").items():
        code, out, err = _command(capsys, "restore", str(path))
        assert code == 1 and out == "", name
        assert err.startswith(f"restore: {path}: ") and err.count("\n") == 1, (name, err)
        assert expected in err or (name == "torn" and "not a readable SQLite database" in err), (name, err)
    assert _awards(live) == 2 and not list(live.parent.glob("*.replaced-*"))
    assert _leftovers(live.parent) == []


async def test_restore_keeps_the_replaced_database_aside(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = tmp_path / "backup.db"
    await _fill(live, 4)
    assert _command(capsys, "backup", str(backup))[0] == 0
    await _fill(live, 3, user="later")  # after the backup: replaced by the restore, kept aside
    code, out, err = _command(capsys, "restore", str(backup))
    assert code == 0 and err == "", err
    (aside,) = live.parent.glob("scoreboard.db.replaced-*")
    assert (
        out
        == f"restore: {live} now holds {backup} ({backup.stat().st_size:,} bytes, schema version {KNOWN[-1]}, 1 users, "
        f"4 awards, integrity ok); the replaced database is kept at {aside}\n"
    )
    assert _awards(live) == 4 and _awards(aside) == 7
    await _fill(live, 1, user="after")  # a server opens the restored file as before
    assert _awards(live) == 5


async def test_a_token_issued_before_the_backup_and_spent_after_awards_again_once_after_the_restore(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As README says: the restore takes the award back and leaves its token unspent; one issued
    after the backup is refused, its grant gone."""
    backup = tmp_path / "backup.db"
    store = SqliteStore(str(live))
    await store.open()
    await store.grant(grant("before", action="a1"))
    await store.close()
    assert _command(capsys, "backup", str(backup))[0] == 0
    store = SqliteStore(str(live))
    await store.open()
    await store.award(claim("before", action="a1"))
    await store.grant(grant("after", action="a2"))
    await store.award(claim("after", action="a2"))
    await store.close()
    assert _command(capsys, "restore", str(backup))[0] == 0
    store = SqliteStore(str(live))
    await store.open()
    try:
        assert (await store.award(claim("before", action="a1"))).new_score == 10
        with pytest.raises(TokenAlreadyUsed):
            await store.award(claim("before", action="a1"))
        with pytest.raises(InvalidToken):
            await store.award(claim("after", action="a2"))
    finally:
        await store.close()


async def test_restore_is_refused_while_a_server_holds_the_database(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = tmp_path / "backup.db"
    await _fill(live, 2)
    assert _command(capsys, "backup", str(backup))[0] == 0
    store = SqliteStore(str(live))  # a server in this process: it holds the serving lock
    await store.open()
    try:
        code, out, err = _command(capsys, "restore", str(backup))
        assert code == 1 and out == ""
        assert err == (
            f"restore: {live}: a server is using it: it holds {live}.lock; stop every server on this file first; "
            "nothing was changed\n"
        )
        assert not list(live.parent.glob("*.replaced-*")) and _leftovers(live.parent) == []
        await store.grant(grant("w-0", user="w", action="w-a0"))  # and the server goes on
        await store.award(claim("w-0", user="w", action="w-a0"))
    finally:
        await store.close()
    assert _awards(live) == 3
    assert _command(capsys, "restore", str(backup))[0] == 0  # once it stopped


async def test_restore_is_refused_while_any_process_has_the_database_open(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A program that never takes the serving lock (a `sqlite3` shell, an older server) is seen by
    SQLite's own lock on the -shm file, and named."""
    backup = tmp_path / "backup.db"
    await _fill(live, 2)
    assert _command(capsys, "backup", str(backup))[0] == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time; db = sqlite3.connect(sys.argv[1]); "
            "db.execute('SELECT count(*) FROM users').fetchall(); print('open', flush=True); time.sleep(60)",
            str(live),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"open\n"
        assert connected_pid(live) == holder.pid
        code, _, err = _command(capsys, "restore", str(backup))
        assert code == 1
        assert (
            err == f"restore: {live}: process {holder.pid} has it open in SQLite; stop it first; nothing was changed\n"
        )
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    assert connected_pid(live) is None
    assert _command(capsys, "restore", str(backup))[0] == 0


async def test_a_server_starting_during_a_restore_waits_for_it(tmp_path: Path) -> None:
    path = tmp_path / "scoreboard.db"
    restore = ServingLock(path)
    assert restore.acquire(exclusive=True)
    store = SqliteStore(str(path))
    opening = asyncio.create_task(store.open())
    await asyncio.sleep(0.3)
    assert not opening.done() and not path.exists()  # waiting, not opening the file under the restore
    restore.release()
    await asyncio.wait_for(opening, 5)
    try:
        assert not ServingLock(path).acquire(exclusive=True)  # now it holds the lock, shared
        other = ServingLock(path)
        assert other.acquire(exclusive=False)  # with other servers on the same file
        other.release()
    finally:
        await store.close()
    assert ServingLock(path).acquire(exclusive=True)


async def test_backup_reads_a_database_a_crash_left_with_its_wal(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After `kill -9` the WAL holds committed awards and no process has the file open: the backup
    (a read-only connection) includes them without changing the database."""
    await _fill(live, 1)
    script = (
        "import os, sqlite3, sys; db = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "db.execute('PRAGMA wal_autocheckpoint = 0'); "
        "db.execute(\"INSERT INTO users (id, username, score, created_at, updated_at) VALUES ('z', 'Z', 0, 0, 0)\"); "
        "os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", script, str(live)], check=True)
    assert Path(f"{live}-wal").stat().st_size > 0
    target = tmp_path / "after-crash.db"
    code, out, _ = _command(capsys, "backup", str(target))
    assert code == 0 and "2 users, 1 awards" in out
    assert Path(f"{live}-wal").stat().st_size > 0  # not checkpointed by the backup


def test_a_summary_counts_as_the_readme_shows_them() -> None:
    summary = Summary(path=Path("b.db"), size=61_440, schema_version=2, users=1_040, awards=12_345)
    assert str(summary) == "61,440 bytes, schema version 2, 1,040 users, 12,345 awards, integrity ok"
