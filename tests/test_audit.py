"""The audit chain on SQLite and PostgreSQL: it verifies after many concurrent awards (two stores,
and two real server processes, sealing at once on one PostgreSQL schema) and while writes go on;
altering, deleting, swapping or forging a row, or an entry, is named by `verify`; an erasure keeps
it verifying; an anchor must stay in the chain; a purged prefix leaves a checkpoint that verify
starts from."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest

from app.api.keys import CONFIG
from app.audit.commands import anchor_command, verify_command
from app.audit.sealer import Sealer
from app.auth import UserAuth
from app.clock import now_ms
from app.records import BoardPeriod, Decision, HoldRules, ModerationAct
from app.settings import FileSettings
from app.storage import Store
from app.storage.chain import GENESIS, SCHEMA_KEY, SEALING_LOCK, ChainStatements, ChainSteps, forget, seal, subject_id
from app.storage.postgres import PostgresStore
from app.storage.schema import POSTGRES, SQLITE
from app.storage.sqlite import SqliteStore
from bench.load import Award, RouteStats, call, issue_tokens, plan_awards

from .conftest import ACTION_SECRET, JWT_SECRET, Flow, make_config
from .isolation import REDIS_URL, schema_dsn
from .real_servers import PROCESS_CONFIG, PROCESS_SCORES, ServerProcess, run_py
from .stores import claim, grant

ROOT = Path(__file__).resolve().parent.parent
WEEKLY = BoardPeriod(board="weekly", period="2026-W49")
BOARDS = (BoardPeriod(board="global", period="all"), WEEKLY)


def _settings(dsn: str | None, store: Store, tmp_path: Path, *, retention_days: int = 0) -> FileSettings:
    kept = {"history_retention_days": retention_days}
    if dsn:
        return make_config(tmp_path / "unused.db", {"database_url": dsn, **kept}).settings
    assert isinstance(store, SqliteStore)
    return make_config(Path(store.path), kept).settings


async def _sql(dsn: str | None, store: Store, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    """A statement run by hand, as someone with access to the database would (`$n` parameters)."""
    if dsn:
        conn = await asyncpg.connect(dsn)
        try:
            return [tuple(row) for row in await conn.fetch(statement, *args)]
        finally:
            await conn.close()
    assert isinstance(store, SqliteStore)
    with contextlib.closing(sqlite3.connect(store.path, isolation_level=None)) as db:
        return db.execute(SQLITE.sql(statement), args).fetchall()


async def _steps(dsn: str | None, store: Store, make: Any) -> Any:
    """Run chain steps in one transaction of a connection of their own."""
    if dsn:
        conn = await asyncpg.connect(dsn)
        steps: ChainSteps = make(ChainStatements(POSTGRES))
        try:
            async with conn.transaction():
                try:
                    query = next(steps)
                    while True:
                        query = steps.send([tuple(r) for r in await conn.fetch(query[0], *query[1])])
                except StopIteration as done:
                    answer = done.value
            return answer
        finally:
            await conn.close()
    assert isinstance(store, SqliteStore)
    steps = make(ChainStatements(SQLITE))
    with contextlib.closing(sqlite3.connect(store.path, isolation_level=None)) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            query = next(steps)
            while True:
                query = steps.send(db.execute(*query).fetchall())
        except StopIteration as done:
            db.execute("COMMIT")
            return done.value


async def _verify(dsn: str | None, store: Store, tmp_path: Path, anchor: str | None = None) -> tuple[bool, str]:
    # In a thread, as the command runs in a process of its own (it runs a loop of its own for PostgreSQL).
    return await asyncio.to_thread(verify_command, _settings(dsn, store, tmp_path), anchor=anchor)


async def _seal_all(store: Store) -> int:
    return await Sealer(store, page=64).catch_up()


async def _history(store: Store) -> None:
    """Three users' awards on two boards, a held award an operator rejected and one approved."""
    for i, user in enumerate(("alice", "bob", "carol")):
        await store.grant(grant(f"n{i}", user=user, action=f"a{i}"))
        await store.award(claim(f"n{i}", user=user, action=f"a{i}", boards=BOARDS))
    await store.grant(grant("n-held", user="alice", action="a-held"))
    held = await store.award(
        msgspec.structs.replace(claim("n-held", user="alice", action="a-held"), rules=HoldRules(over_per_hour=0))
    )
    assert held.held is not None
    await store.decide(Decision(held_id=held.held, approve=False, operator="op-1", reason="too fast", now_ms=3000))
    # Approved after its score_history row was sealed: landing sets that row's copy of the scores.
    await store.grant(grant("n-ok", user="bob", action="a-ok"))
    kept = await store.award(
        msgspec.structs.replace(claim("n-ok", user="bob", action="a-ok"), rules=HoldRules(over_per_hour=0))
    )
    assert kept.held is not None
    await _seal_all(store)
    await store.decide(
        Decision(held_id=kept.held, approve=True, operator="op-1", reason="fine", now_ms=3000, boards=BOARDS[:1])
    )


async def test_the_chain_seals_every_final_row_and_verifies(dsn: str | None, store: Store, tmp_path: Path) -> None:
    await _history(store)
    assert await _seal_all(store) == 2  # the approval's board change, the decided held award
    intact, line = await _verify(dsn, store, tmp_path)
    assert intact, line
    assert "ok, 14 entries intact" in line and "pending" not in line
    # Written after the last seal: pending, not bad.
    await store.grant(grant("n9", user="dave", action="a9"))
    await store.award(claim("n9", user="dave", action="a9"))
    intact, line = await _verify(dsn, store, tmp_path)
    assert intact and "2 rows were pending sealing" in line, line


class _Broken(Exception):
    pass


def _seal_then_fail(st: ChainStatements) -> ChainSteps:
    yield from seal(st, limit=3)
    raise _Broken


async def test_a_page_taken_by_a_failed_seal_stays_queued(dsn: str | None, store: Store, tmp_path: Path) -> None:
    # The sealer takes a page off the queue before it chains it: a transaction that fails after
    # that must leave every row queued, and the next seal takes them in pages, each row once.
    for i, user in enumerate(("alice", "bob", "carol", "dave")):
        await store.grant(grant(f"n{i}", user=user, action=f"a{i}"))
        await store.award(claim(f"n{i}", user=user, action=f"a{i}", boards=BOARDS))
    queued = sorted(await _sql(dsn, store, "SELECT tbl, row_id FROM audit_queue"))
    assert len(queued) == 12  # each award's history row and its two boards' rows
    with pytest.raises(_Broken):
        await _steps(dsn, store, _seal_then_fail)
    assert sorted(await _sql(dsn, store, "SELECT tbl, row_id FROM audit_queue")) == queued
    assert await _sql(dsn, store, "SELECT COUNT(*) FROM audit_chain") == [(0,)]
    assert [await store.seal(5) for _ in range(4)] == [5, 5, 2, 0]
    assert sorted(await _sql(dsn, store, "SELECT tbl, row_id FROM audit_chain")) == queued
    intact, line = await _verify(dsn, store, tmp_path)
    assert intact and "ok, 12 entries intact" in line, line


async def test_a_sealer_behind_takes_larger_pages_up_to_the_stores_most(
    dsn: str | None, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(40):  # 120 rows queued: each award's history row and its two boards' rows
        await store.grant(grant(f"n{i}", user=f"u{i % 7}", action=f"a{i}"))
        await store.award(claim(f"n{i}", user=f"u{i % 7}", action=f"a{i}", boards=BOARDS))
    pages: list[int] = []
    seal_page = store.seal

    async def seal_and_count(limit: int) -> int:
        pages.append(limit)
        return await seal_page(limit)

    monkeypatch.setattr(store, "seal", seal_and_count)
    monkeypatch.setattr(store, "most_sealed", 16)
    assert await Sealer(store, page=4).catch_up() == 120
    assert pages == [4, 8, *[16] * 7]  # 120 = 4 + 8 + 16 * 6 + 12: the last page not full
    pages.clear()
    assert await Sealer(store, page=4).catch_up() == 0 and pages == [4]  # nothing behind: one small page
    intact, line = await _verify(dsn, store, tmp_path)
    assert intact and "ok, 120 entries intact" in line, line


TAMPERS = {
    "altered value": (["UPDATE score_history SET score_change = 999 WHERE id = 2"], "score_history id 2 ", "altered"),
    "moved to another user": (
        ["UPDATE board_history SET user_id = 'bob' WHERE id = 1"],
        "board_history id 1 ",
        "altered",
    ),
    "deleted": (["DELETE FROM board_history WHERE id = 3"], "board_history id 3 ", "deleted"),
    "swapped": (
        [
            "UPDATE board_history SET board = 'weekly', period = '2026-W49' WHERE id = 1",
            "UPDATE board_history SET board = 'global', period = 'all' WHERE id = 2",
        ],
        "board_history id 1 ",
        "altered",
    ),
    "decision rewritten": (["UPDATE held_awards SET status = 'approved'"], "held_awards id 1 ", "altered"),
    "forged row": (
        [
            "INSERT INTO board_history (board, period, user_id, value, new_score, created_at) "
            "VALUES ('global', 'all', 'bob', 500, 600, 2500)",
            "DELETE FROM audit_queue",
        ],
        "board_history id 8: not in the chain",
        "",
    ),
    "entry rewritten": (
        ["UPDATE audit_chain SET digest = (SELECT digest FROM audit_chain WHERE seq = 1) WHERE seq = 2"],
        "(chain seq 2): the chain entry was altered",
        "",
    ),
    "entry deleted": (["DELETE FROM audit_chain WHERE seq = 5"], "audit_chain seq 5: missing", ""),
}


@pytest.mark.parametrize("tamper", list(TAMPERS))
async def test_tampering_is_named(dsn: str | None, store: Store, tmp_path: Path, tamper: str) -> None:
    await _history(store)
    await _seal_all(store)
    statements, where, what = TAMPERS[tamper]
    for statement in statements:
        await _sql(dsn, store, statement)
    intact, line = await _verify(dsn, store, tmp_path)
    assert not intact
    assert where in line and what in line, line


def _cli(settings_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env}
    return subprocess.run(
        [sys.executable, "run.py", "audit", *args],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_command_line_verifies_and_anchors(dsn: str | None, store: Store, tmp_path: Path) -> None:
    """The real `run.py audit`: exit 0 when intact, the head to anchor, exit 1 naming the bad row."""
    env = {"SCOREBOARD_CONFIG": str(ROOT / "config.toml")}
    env.update({"SCOREBOARD_DATABASE_URL": dsn} if dsn else {"SCOREBOARD_SQLITE_PATH": getattr(store, "path", "")})
    await _history(store)
    await _seal_all(store)
    anchored = _cli(env, "anchor")
    assert anchored.returncode == 0, anchored.stderr
    head, _, seq = anchored.stdout.split()
    assert len(head) == 64 and head != GENESIS and seq == "14"
    assert anchored.stdout.strip() == await asyncio.to_thread(anchor_command, _settings(dsn, store, tmp_path))
    # Later awards keep the anchor in the chain.
    await store.grant(grant("n9", user="dave", action="a9"))
    await store.award(claim("n9", user="dave", action="a9"))
    await _seal_all(store)
    ok = _cli(env, "verify", "--anchor", head)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok, 16 entries intact, head seq 16" in ok.stdout and f"anchor {head} is in it" in ok.stdout
    elsewhere = _cli(env, "verify", "--anchor", "ab" * 32)
    assert elsewhere.returncode == 1 and f"anchor {'ab' * 32}: not in the chain" in elsewhere.stdout
    await _sql(dsn, store, "UPDATE score_history SET action_id = 'forged' WHERE id = 3")
    bad = _cli(env, "verify")
    assert bad.returncode == 1
    assert "FAILED at score_history id 3 (chain seq" in bad.stdout and "altered" in bad.stdout


async def test_the_command_line_refuses_a_database_that_is_not_there(tmp_path: Path) -> None:
    result = _cli({"SCOREBOARD_SQLITE_PATH": str(tmp_path / "none.db")}, "verify")
    assert result.returncode == 2 and "no database at" in result.stderr and not result.stdout


@pytest.mark.parametrize("command", ["verify", "anchor"])
async def test_a_file_that_is_no_database_is_unreadable_not_tampered(tmp_path: Path, command: str) -> None:
    # Exit 1 says the chain was broken: a cron job would raise the alarm for a file it cannot read.
    for name, content in (("text.db", b"not a database\n" * 300), ("random.db", bytes(range(256)) * 40)):
        (tmp_path / name).write_bytes(content)
        result = _cli({"SCOREBOARD_SQLITE_PATH": str(tmp_path / name)}, command)
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [
            f"audit {command}: {tmp_path / name}: not a readable SQLite database (file is not a database)"
        ]
        assert not result.stdout


async def test_an_erasure_keeps_the_chain_verifying(dsn: str | None, store: Store, tmp_path: Path) -> None:
    """Rows sealed before the erasure, and rows erased before they were sealed, both verify; no
    row of the chain's tables holds the user's id afterwards."""
    await _history(store)
    await _seal_all(store)
    await store.grant(grant("n7", user="carol", action="a7"))
    await store.award(claim("n7", user="carol", action="a7", boards=BOARDS))  # queued, not sealed
    await store.grant(grant("n8", user="op-1", action="a8"))  # the operator who decided, a user too
    # Moderation by op-1 on carol: the acts and their correction rows are chained too.
    base = ModerationAct(action="disqualify", operator="op-1", reason="checked", created_ms=3500, user_id="carol")
    await store.disqualify(base)
    where = BOARDS[0]
    adjust = msgspec.structs.replace(base, action="adjust", board=where.board, period=where.period, amount=-5)
    await store.adjust(adjust, where, create=True)
    wipe = msgspec.structs.replace(base, action="wipe", user_id=None, board=BOARDS[1].board, period=BOARDS[1].period)
    await store.wipe(wipe, BOARDS[1])
    await store.erase("carol", "erased-0123456789abcdef01234567", 4000)
    await store.erase("op-1", "erased-fedcba9876543210fedcba98", 4000)
    await _seal_all(store)
    intact, line = await _verify(dsn, store, tmp_path)
    assert intact, line
    assert (await _sql(dsn, store, "SELECT decided_by FROM held_awards"))[0][0].startswith("erased-")
    assert "carol" not in repr(await _sql(dsn, store, "SELECT * FROM moderation"))
    for table in ("audit_chain", "audit_subjects", "audit_queue", "audit_checkpoints"):
        kept = repr(await _sql(dsn, store, f"SELECT * FROM {table}"))
        assert "carol" not in kept and "op-1" not in kept
        assert subject_id("carol") not in kept and subject_id("op-1") not in kept  # the keys went to the pseudonyms
    # The erased user's row moved to another subject alone is still caught.
    await _sql(dsn, store, "UPDATE score_history SET user_id = 'alice' WHERE id = 3")
    intact, line = await _verify(dsn, store, tmp_path)
    assert not intact and "score_history id 3 " in line, line


async def test_rows_retention_deleted_still_verify(dsn: str | None, store: Store, tmp_path: Path) -> None:
    """Rows older than `history_retention_days` may be gone (retention deleted them); a younger row
    gone is named."""
    await _history(store)
    await _seal_all(store)
    later = now_ms() + 2 * 86_400_000
    swept = await store.sweep_changes(0, later)  # what the retention of 1 day deletes two days on
    assert swept.deleted > 0
    settings = _settings(dsn, store, tmp_path, retention_days=1)
    intact, line = await asyncio.to_thread(verify_command, settings, now=later)
    assert intact and f"({swept.deleted} of their rows deleted by retention)" in line, line
    intact, line = await asyncio.to_thread(verify_command, settings)  # today: too young to be retention's
    assert not intact and "FAILED at board_history id " in line and ": deleted" in line, line
    intact, again = await asyncio.to_thread(verify_command, _settings(dsn, store, tmp_path), now=later)
    assert again == line  # no retention configured: nothing may go


async def test_a_purged_prefix_leaves_a_checkpoint(dsn: str | None, store: Store, tmp_path: Path) -> None:
    await _history(store)
    await _seal_all(store)
    head = await asyncio.to_thread(anchor_command, _settings(dsn, store, tmp_path))
    purged = await _sql(dsn, store, "SELECT tbl, row_id FROM audit_chain WHERE seq <= 2")
    assert await _steps(dsn, store, lambda st: forget(st, through_seq=2, now_ms=5000))
    # The purge deletes those entries' rows with them (here whatever refers to them: the test's
    # rows are not retention's choice; a forgotten entry's row must be gone, or it is unchained).
    deletes = [(f"DELETE FROM {table} WHERE id = $1", row_id) for table, row_id in purged]
    if dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("SET session_replication_role = replica")  # no foreign key checks
            for statement, row_id in deletes:
                await conn.execute(statement, row_id)
        finally:
            await conn.close()
    else:
        for statement, row_id in deletes:
            await _sql(dsn, store, statement, row_id)  # this connection does not check foreign keys
    intact, line = await _verify(dsn, store, tmp_path, anchor=head.split()[0])
    assert intact and "12 entries after the checkpoint at seq 2 intact" in line, line
    assert not await _steps(dsn, store, lambda st: forget(st, through_seq=2, now_ms=5000))  # gone already
    await _sql(dsn, store, "DELETE FROM audit_chain WHERE seq = 3")
    intact, line = await _verify(dsn, store, tmp_path)
    assert not intact and "audit_chain seq 3: missing" in line, line


AWARDS = 10_000


async def _awards(store: Store, users: range, start: int) -> None:
    grants = [grant(f"g{i}", user=f"u{i % 97}", action=f"a{i}", issued=1000) for i in users]
    await asyncio.gather(*(store.grant(g) for g in grants))
    await asyncio.gather(*(store.award(claim(g.nonce, user=g.user_id, action=g.action_id, now=start)) for g in grants))


async def _seal_while(store: Store, writing: asyncio.Future[Any]) -> None:
    sealer = Sealer(store, page=256)
    while not writing.done():
        await sealer.catch_up()
        await asyncio.sleep(0.01)


async def test_a_sealer_waits_only_for_a_sealer_of_its_own_schema(pg_schema: str) -> None:
    # Advisory locks belong to the whole database: the sealing lock is keyed by schema too, so that a
    # deployment (or a test) in another schema never makes this one skip its sealing.
    store = PostgresStore(schema_dsn(pg_schema), pool_size=2)
    await store.open()
    holder = await asyncpg.connect(schema_dsn(pg_schema))
    try:
        await store.grant(grant("n1"))
        await store.award(claim("n1"))
        async with holder.transaction():
            await holder.execute("SELECT pg_advisory_xact_lock($1, hashtext('some_other_schema'))", SEALING_LOCK)
            assert await store.seal(100) == 2  # the award's two rows
        await store.grant(grant("n2", action="a2"))
        await store.award(claim("n2", action="a2"))
        async with holder.transaction():
            await holder.execute(f"SELECT pg_advisory_xact_lock($1, {SCHEMA_KEY})", SEALING_LOCK)  # this schema's
            assert await store.seal(100) == 0  # another sealer of this schema is at work
        assert await store.seal(100) == 2
    finally:
        await holder.close()
        await store.close()


async def test_the_chain_holds_after_concurrent_awards(dsn: str | None, tmp_path: Path) -> None:
    """10,000 concurrent awards: on SQLite through the group commit; on PostgreSQL from two stores
    on one schema (two processes' pools), each with a sealer running as the awards commit and a
    verify walking the chain meanwhile."""
    first: Store = PostgresStore(dsn, pool_size=5) if dsn else SqliteStore(str(tmp_path / "db.sqlite"))
    second = PostgresStore(dsn, pool_size=5) if dsn else None
    stores = [first] if second is None else [first, second]
    for store in stores:
        await store.open()
    try:
        halves = [range(0, AWARDS)] if second is None else [range(0, AWARDS // 2), range(AWARDS // 2, AWARDS)]
        writing = asyncio.ensure_future(
            asyncio.gather(*(_awards(s, h, 2000) for s, h in zip(stores, halves, strict=True)))
        )
        sealing = [asyncio.ensure_future(_seal_while(s, writing)) for s in stores]
        await asyncio.sleep(0.5)
        intact, line = await _verify(dsn, first, tmp_path)  # while the awards commit and the sealers seal
        assert intact, line
        await writing
        await asyncio.gather(*sealing)
        for store in stores:
            await _seal_all(store)
        intact, line = await _verify(dsn, first, tmp_path)
        assert intact, line
        assert f"ok, {2 * AWARDS} entries intact, head seq {2 * AWARDS}" in line, line
    finally:
        for store in stores:
            await store.close()


IN_FLIGHT = 64  # requests at once, over both processes
SEALED_WITHIN = 30.0  # seconds the sealers may take to catch up once the last award is answered


async def _updates(http: aiohttp.ClientSession, server: ServerProcess, awards: list[Award], workers: int) -> RouteStats:
    """Every award's update on `server`, `workers` at a time."""
    stats = RouteStats()
    queue = iter(awards)

    async def worker() -> None:
        for award in queue:
            await call(
                http, stats, "POST", f"{server.url}/api/v1/scoreboard/update", body=award.body, bearer=award.bearer
            )

    await asyncio.gather(*(worker() for _ in range(workers)))
    return stats


async def _sealed(dsn: str) -> tuple[int, int, int]:
    """(rows queued, chain entries, history rows) of the schema, once nothing is queued or SEALED_WITHIN passed."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = asyncio.get_running_loop().time() + SEALED_WITHIN
        while True:
            counts = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM audit_queue), (SELECT count(*) FROM audit_chain),"
                " (SELECT count(*) FROM score_history) + (SELECT count(*) FROM board_history)"
            )
            assert counts is not None
            if counts[0] == 0 or asyncio.get_running_loop().time() > deadline:
                return counts[0], counts[1], counts[2]
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def test_the_chain_holds_after_concurrent_awards_from_two_server_processes(
    pg_schema: str, redis_prefix: str, tmp_path: Path
) -> None:
    """10,000 awards over HTTP, half to each of two `run.py` processes on one PostgreSQL schema and
    Redis prefix, 64 in flight: each process's sealer seals as they commit (one at a time, by the
    advisory lock); the real `run.py audit verify` passes meanwhile and, once both stopped, finds
    every history row in an intact chain."""
    dsn = schema_dsn(pg_schema)
    config = tmp_path / "config.toml"
    config.write_text(PROCESS_CONFIG.format(prefix=redis_prefix))
    env = {
        "SCOREBOARD_CONFIG": str(config),
        "SCOREBOARD_REDIS_URL": REDIS_URL,
        "SCOREBOARD_DATABASE_URL": dsn,
        "SCOREBOARD_JWT_SECRET": JWT_SECRET.decode(),
        "SCOREBOARD_ACTION_SECRET": ACTION_SECRET.decode(),
    }
    cli_env = {"SCOREBOARD_CONFIG": str(ROOT / "config.toml"), "SCOREBOARD_DATABASE_URL": dsn}
    servers = [run_py(env), run_py(env)]
    try:
        await asyncio.gather(*(server.astart() for server in servers))
        bearers = [UserAuth(JWT_SECRET).issue(f"u{i}", name=f"U{i}") for i in range(97)]
        awards = plan_awards(bearers, AWARDS, sorted(PROCESS_SCORES), seed=7)
        halves = [awards[0::2], awards[1::2]]
        workers = IN_FLIGHT // len(servers)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT)) as http:
            issued = await asyncio.gather(
                *(issue_tokens(http, s.url, half, workers) for s, half in zip(servers, halves, strict=True))
            )
            for stats in issued:
                assert stats.statuses == {"200": AWARDS // 2}, stats.summary()
            updating = asyncio.gather(
                *(_updates(http, s, half, workers) for s, half in zip(servers, halves, strict=True))
            )
            await asyncio.sleep(2)
            meanwhile = await asyncio.to_thread(_cli, cli_env, "verify")  # while awards commit and sealers seal
            updated = await updating
        assert meanwhile.returncode == 0, meanwhile.stdout + meanwhile.stderr
        assert "audit verify: ok, " in meanwhile.stdout, meanwhile.stdout
        for stats in updated:  # both processes served their half: no award went through the other alone
            assert stats.statuses == {"200": AWARDS // 2}, stats.summary()
        queued, entries, history = await _sealed(dsn)
        assert (queued, entries, history) == (0, 2 * AWARDS, 2 * AWARDS)  # a score and a board row an award
    finally:
        for server in servers:
            await server.astop()
    for server in servers:
        assert server.proc is not None and server.proc.returncode == 0, server.log_tail()
        assert b"sealing the audit chain failed" not in server.log, server.log_tail()
    verified = await asyncio.to_thread(_cli, cli_env, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"ok, {2 * AWARDS} entries intact, head seq {2 * AWARDS}" in verified.stdout, verified.stdout
    assert "pending" not in verified.stdout


async def test_the_server_seals_as_it_serves(client: Any, flow: Flow) -> None:
    """In every storage set-up the app's own sealer seals the awards within about a second, and
    verify passes while it runs."""
    settings = client.app[CONFIG].settings
    for i in range(5):
        await flow.award("alice", f"q{i}")
    intact, line = await asyncio.to_thread(verify_command, settings)
    assert intact, line
    for _ in range(50):
        intact, line = await asyncio.to_thread(verify_command, settings)
        if "pending" not in line:
            break
        await asyncio.sleep(0.1)
    assert intact and "ok, 10 entries intact" in line and "pending" not in line, line


@pytest.mark.parametrize("altered", [False, True])
async def test_a_sealed_row_deleted_and_inserted_again_is_not_sealed_twice(
    dsn: str | None, store: Store, tmp_path: Path, altered: bool
) -> None:
    await _history(store)
    await _seal_all(store)
    await _sql(dsn, store, "CREATE TABLE kept AS SELECT * FROM board_history WHERE id = 1")
    await _sql(dsn, store, "DELETE FROM board_history WHERE id = 1")
    if altered:
        await _sql(dsn, store, "UPDATE kept SET value = value + 1")
    await _sql(dsn, store, "INSERT INTO board_history SELECT * FROM kept")  # its trigger queues it again
    await _sql(dsn, store, "DROP TABLE kept")
    assert await _seal_all(store) == 1  # taken off the queue, and not sealed a second time
    await store.grant(grant("n9", user="dave", action="a9"))
    await store.award(claim("n9", user="dave", action="a9"))
    assert await _seal_all(store) == 2  # the rounds after it seal as before
    intact, line = await _verify(dsn, store, tmp_path)
    if altered:
        assert not intact and "board_history id 1 " in line and "altered" in line, line
    else:
        assert intact and "pending" not in line, line
