"""What every store promises for many boards, run against SQLite and PostgreSQL alike: awards on
several boards in one transaction (a failure in the database partway through keeps nothing),
trusted writes under their Idempotency-Key, the boards table, and the migration of the scores
from before boards existed."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from app.errors import (
    BoardExists,
    BoardNotFound,
    IdempotencyConflict,
    PeriodEnded,
    ServiceUnavailable,
    TokenAlreadyUsed,
    ValidationFailed,
)
from app.records import Award, BoardPeriod, HoldRules, OperatorAct, ScoreWrite
from app.storage import Store, postgres
from app.storage.postgres import PostgresStore
from app.storage.schema import SQLITE, migrations
from app.storage.sqlite import SqliteStore

from .isolation import schema_dsn
from .stores import GLOBAL, claim, grant, open_store, score

WEEKLY = BoardPeriod(board="weekly", period="2026-W49")
TRIAL = BoardPeriod(board="trial", period="all", ascending=True)


def write(
    key: str,
    score: int,
    *,
    where: BoardPeriod = TRIAL,
    operator: str = "best",
    user: str = "u",
    subscore: int | None = None,
    metadata: str | None = None,
    request_hash: str | None = None,
    now: int = 5000,
) -> ScoreWrite:
    return ScoreWrite(
        service="timer",
        key=key,
        request_hash=request_hash or f"{key}-{score}-{user}",
        where=where,
        operator=operator,
        user_id=user,
        score=score,
        subscore=subscore,
        metadata=metadata,
        now_ms=now,
    )


async def open_boards(store: Store) -> None:
    """Declare the boards the trusted writes here go to: a write checks its board is not retired."""
    await store.declare_boards({board: "{}" for board in ("global", "weekly", "trial", "latest")})


async def test_an_award_counts_once_on_each_of_its_boards(store: Store) -> None:
    await store.grant(grant("n1"))
    award = await store.award(claim("n1", boards=(GLOBAL, WEEKLY)))
    assert [(c.where, c.previous_score, c.new_score) for c in award.changes] == [(GLOBAL, None, 10), (WEEKLY, None, 10)]
    assert award.changes[0].seq < award.changes[1].seq
    await store.grant(grant("n2", action="b"))
    second = await store.award(claim("n2", action="b", boards=(GLOBAL, WEEKLY)))
    assert [(c.previous_score, c.new_score) for c in second.changes] == [(10, 20), (10, 20)]
    assert (second.previous_score, second.new_score) == (10, 20)
    with pytest.raises(TokenAlreadyUsed):
        await store.award(claim("n2", action="b", boards=(GLOBAL, WEEKLY)))
    assert await score(store, "u") == 20 and await score(store, "u", WEEKLY) == 20


async def test_concurrent_awards_on_several_boards_lose_nothing(store: Store) -> None:
    await asyncio.gather(*(store.grant(grant(f"n{i}", action=f"a{i}")) for i in range(20)))
    results = await asyncio.gather(
        *(store.award(claim(f"n{i}", action=f"a{i}", boards=(GLOBAL, WEEKLY))) for i in range(20)),
        *(store.award(claim(f"n{i}", action=f"a{i}", boards=(GLOBAL, WEEKLY))) for i in range(20)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 20
    assert await score(store, "u") == 200 and await score(store, "u", WEEKLY) == 200


async def test_best_set_and_incr_writes(store: Store) -> None:
    await open_boards(store)
    first = await store.write_score(write("a", 62_000))
    assert (first.change.previous_score, first.change.new_score, first.change.changed) == (None, 62_000, True)
    better = await store.write_score(write("b", 61_000, metadata='{"car":"red"}'))
    assert (better.change.previous_score, better.change.new_score, better.change.changed) == (62_000, 61_000, True)
    worse = await store.write_score(write("c", 63_000))
    assert (worse.change.new_score, worse.change.changed, worse.change.seq) == (61_000, False, better.change.seq)
    (standing,) = await store.standings("trial", "all")
    assert (standing.score, standing.metadata, standing.username) == (61_000, '{"car":"red"}', "u")
    latest = BoardPeriod(board="latest", period="all")
    await store.write_score(write("d", 5, where=latest, operator="set"))
    lower = await store.write_score(write("e", -3, where=latest, operator="set", subscore=2))
    assert (lower.change.previous_score, lower.change.new_score, lower.change.subscore) == (5, -3, 2)
    added = await store.write_score(write("f", 7, where=GLOBAL, operator="incr"))
    added = await store.write_score(write("g", 5, where=GLOBAL, operator="incr"))
    assert (added.change.previous_score, added.change.new_score) == (7, 12)


async def test_an_idempotency_key_answers_once(store: Store) -> None:
    await open_boards(store)
    first = await store.write_score(write("k", 61_000))
    again = await store.write_score(write("k", 61_000, now=9000))
    assert again.replayed and again.change == first.change and again.answer is None
    await store.keep_answer("timer", "k", '{"kept": true}')
    kept = await store.write_score(write("k", 61_000))
    assert kept.answer == '{"kept": true}'
    with pytest.raises(IdempotencyConflict):
        await store.write_score(write("k", 60_000, request_hash="another"))
    (standing,) = await store.standings("trial", "all")
    assert standing.score == 61_000
    concurrent = await asyncio.gather(
        *(store.write_score(write("c", 10, where=GLOBAL, operator="incr")) for _ in range(10))
    )
    assert sum(not o.replayed for o in concurrent) == 1
    assert await score(store, "u") == 10
    assert await store.purge_keys(10**13) == 2
    assert (await store.write_score(write("k", 61_000))).replayed is False  # forgotten: a new write


async def test_boards_are_declared_created_changed_and_retired(store: Store, dsn: str | None, tmp_path: Path) -> None:
    assert await store.declare_boards({"global": '{"a":1}', "weekly": '{"b":1}'}) == []  # added, none replaced
    assert await store.boards() == [("global", '{"a":1}'), ("weekly", '{"b":1}')]
    await store.create_board("season", '{"c":1}', OPS)
    with pytest.raises(BoardExists):
        await store.create_board("season", '{"c":2}', OPS)
    await store.change_board("season", '{"c":3}', OPS)
    await store.change_board("weekly", '{"b":2}', NO_REASON)  # an operator's change to a declared board
    assert await store.declare_boards({"global": '{"a":1}', "weekly": '{"b":1}'}) == []  # the same: kept
    assert dict(await store.boards())["weekly"] == '{"b":2}'
    assert await store.declare_boards({"global": '{"a":1}', "weekly": '{"b":9}'}) == ["weekly"]  # an edited file wins
    assert dict(await store.boards())["weekly"] == '{"b":9}'
    await store.retire_board("weekly", OPS)
    assert [(b, s) for b, s, _ in await store.retired_boards()] == [("weekly", '{"b":9}')]
    assert await store.declare_boards({"global": '{"a":1}', "weekly": '{"b":10}'}) == ["weekly"]  # back
    assert await store.retired_boards() == [] and dict(await store.boards())["weekly"] == '{"b":10}'
    await store.retire_board("season", OPS)
    with pytest.raises(BoardNotFound):
        await store.retire_board("season", OPS)
    with pytest.raises(BoardNotFound):
        await store.change_board("season", "{}", OPS)
    with pytest.raises(BoardExists):
        await store.create_board("season", "{}", OPS)
    assert [b for b, _ in await store.boards()] == ["global", "weekly"]
    # Every act that changed the catalog is in the moderation record (sealed onto the audit chain),
    # with its operator and reason; the refused ones and the configuration's declarations are not.
    assert await _database(
        dsn, tmp_path, "SELECT action, operator, reason, user_id, board, details FROM moderation ORDER BY id"
    ) == [
        ("create_board", "ops-1", "new season", None, "season", '{"c":1}'),
        ("change_board", "ops-1", "new season", None, "season", '{"c":3}'),
        ("change_board", "ops-1", "", None, "weekly", '{"b":2}'),
        ("retire_board", "ops-1", "new season", None, "weekly", None),
        ("retire_board", "ops-1", "new season", None, "season", None),
    ]


OPS = OperatorAct(operator="ops-1", reason="new season")
NO_REASON = OperatorAct(operator="ops-1", reason="")


async def test_scores_from_before_boards_move_to_global(dsn: str | None, tmp_path: Path) -> None:
    # A database at migration 1 with two awards, written as the version before boards wrote them.
    (version, statements), *_ = migrations(SQLITE) if dsn is None else [(1, [])]
    rows = [
        "INSERT INTO users (id, username, score, score_seq, last_score_update, created_at, updated_at) "
        "VALUES ('old', 'Old', 150, 2, 4000, 1, 1)",
        "INSERT INTO score_history (id, user_id, action_type, action_id, score_change, previous_score, new_score, "
        "token_nonce, action_token_hash, created_at) VALUES (1, 'old', 'T', 'a', 100, 0, 100, 'x1', 'h1', 3000)",
        "INSERT INTO score_history (id, user_id, action_type, action_id, score_change, previous_score, new_score, "
        "token_nonce, action_token_hash, created_at) VALUES (2, 'old', 'T', 'b', 50, 100, 150, 'x2', 'h2', 4000)",
    ]
    if dsn is None:
        path = tmp_path / "db.sqlite"
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
            for statement in statements:
                db.execute(statement)
            db.execute("INSERT INTO schema_migrations VALUES (?, 0)", (version,))
            for row in rows:
                db.execute(row)
    else:
        from app.storage.schema import POSTGRES

        (_, pg_statements), *_ = migrations(POSTGRES)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
            )
            for statement in pg_statements:
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_migrations VALUES (1, 0)")
            for row in rows:
                await conn.execute(row)
            await conn.execute("SELECT setval(pg_get_serial_sequence('score_history', 'id'), 2)")
        finally:
            await conn.close()
    migrated = open_store(dsn, tmp_path)
    await migrated.open()
    try:
        (standing,) = await migrated.standings("global", "all")
        assert (standing.user_id, standing.username, standing.score, standing.seq) == ("old", "Old", 150, 2)
        await migrated.grant(grant("n1", user="old", action="c"))
        award = await migrated.award(claim("n1", user="old", action="c"))
        await open_boards(migrated)
        assert (award.previous_score, award.new_score) == (150, 160)
        assert award.changes[0].seq > 2  # seqs go on after the migrated history
        written = await migrated.write_score(write("w", 1, where=GLOBAL, operator="incr", user="old"))
        assert written.change.new_score == 161 and written.change.seq > award.changes[0].seq
    finally:
        await migrated.close()


async def test_a_sum_beyond_the_range_is_refused_and_writes_nothing(store: Store) -> None:
    await open_boards(store)
    await store.write_score(write("a", 2**53, where=GLOBAL, operator="incr"))
    ok, refused = await asyncio.gather(
        store.write_score(write("b", 5, where=GLOBAL, operator="incr", user="v")),  # in the same batch
        store.write_score(write("c", 1, where=GLOBAL, operator="incr")),
        return_exceptions=True,
    )
    assert isinstance(refused, ValidationFailed) and not isinstance(ok, BaseException)
    assert await score(store, "u") == 2**53 and await score(store, "v") == 5
    # Nothing of the refused write stayed, its key included: the key is free for another request.
    retry = await store.write_score(write("c", -1, where=GLOBAL, operator="incr", request_hash="other"))
    assert retry.replayed is False and retry.change.new_score == 2**53 - 1


B1, B2, B3 = (BoardPeriod(board=b, period="all") for b in ("b1", "b2", "b3"))
# What an award writes, each table as the test reads it with a connection of its own.
WRITTEN = {
    "spent": "SELECT nonce FROM action_tokens WHERE used_at IS NOT NULL ORDER BY nonce",
    "awards": "SELECT token_nonce FROM score_history ORDER BY token_nonce",
    "changes": "SELECT board, user_id, new_score FROM board_history ORDER BY board, user_id",
    "entries": "SELECT board, user_id, score FROM board_entries ORDER BY board, user_id",
}
NOTHING: dict[str, list[tuple[Any, ...]]] = {name: [] for name in WRITTEN}


async def _database(dsn: str | None, tmp_path: Path, *statements: str) -> list[tuple[Any, ...]]:
    """Run statements on a connection of the test's own to the store's database (its schema, its
    file), beside the store's; the last one's rows."""
    rows: list[tuple[Any, ...]] = []
    if dsn is None:
        with contextlib.closing(sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)) as db:
            for statement in statements:
                rows = db.execute(statement).fetchall()
        return rows
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            rows = [tuple(row) for row in await conn.fetch(statement)]
    finally:
        await conn.close()
    return rows


async def _written(dsn: str | None, tmp_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {name: await _database(dsn, tmp_path, query) for name, query in WRITTEN.items()}


async def _fail_writes_on_b2(dsn: str | None, tmp_path: Path, table: str) -> None:
    """From now on the database itself refuses a row of `table` for board b2: a failure the store
    cannot see coming, after the award's earlier writes (its token, its history, board b1)."""
    if dsn is None:
        await _database(
            dsn,
            tmp_path,
            f"CREATE TRIGGER injected BEFORE INSERT ON {table} WHEN NEW.board = 'b2' "
            "BEGIN SELECT RAISE(ABORT, 'injected'); END",
        )
        return
    await _database(
        dsn,
        tmp_path,
        "CREATE FUNCTION injected() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected'; END $$",
        f"CREATE TRIGGER injected BEFORE INSERT ON {table} FOR EACH ROW WHEN (NEW.board = 'b2') "
        "EXECUTE FUNCTION injected()",
    )


async def _stop_failing(dsn: str | None, tmp_path: Path, table: str) -> None:
    await _database(dsn, tmp_path, "DROP TRIGGER injected" if dsn is None else f"DROP TRIGGER injected ON {table}")


@pytest.mark.parametrize("table", ["board_history", "board_entries"])
async def test_an_award_failing_on_its_second_board_keeps_nothing_and_its_token_awards_later(
    store: Store, dsn: str | None, tmp_path: Path, table: str, caplog: pytest.LogCaptureFixture
) -> None:
    await store.grant(grant("n1"))
    await _fail_writes_on_b2(dsn, tmp_path, table)
    with pytest.raises((ServiceUnavailable, asyncpg.PostgresError)) as failed:
        await store.award(claim("n1", boards=(B1, B2, B3)))
    assert "injected" in caplog.text + str(failed.value)  # the trigger's error, not a refusal
    if dsn is not None:
        # The call of the award function failed first, then the claim's own steps: both kept nothing.
        assert "each runs on its own" in caplog.text
    assert await _written(dsn, tmp_path) == NOTHING
    for where in (B1, B2, B3):
        assert await store.standings(where.board, where.period) == []
    await _stop_failing(dsn, tmp_path, table)
    award = await store.award(claim("n1", boards=(B1, B2, B3)))
    assert [(c.where, c.previous_score, c.new_score) for c in award.changes] == [
        (B1, None, 10),
        (B2, None, 10),
        (B3, None, 10),
    ]
    with pytest.raises(TokenAlreadyUsed):
        await store.award(claim("n1", boards=(B1, B2, B3)))
    assert await _written(dsn, tmp_path) == {
        "spent": [("n1",)],
        "awards": [("n1",)],
        "changes": [("b1", "u", 10), ("b2", "u", 10), ("b3", "u", 10)],
        "entries": [("b1", "u", 10), ("b2", "u", 10), ("b3", "u", 10)],
    }
    for where in (B1, B2, B3):
        assert await score(store, "u", where) == 10


@pytest.mark.parametrize("table", ["board_history", "board_entries"])
async def test_an_award_failing_in_the_database_takes_nothing_of_another_committed_with_it(
    store: Store, dsn: str | None, tmp_path: Path, table: str
) -> None:
    await store.grant(grant("bad", user="u"))
    await store.grant(grant("good", user="v"))
    await _fail_writes_on_b2(dsn, tmp_path, table)
    batches: list[int] = []
    if isinstance(store, PostgresStore):
        store._at_once.observe(batches.append)
    else:
        assert isinstance(store, SqliteStore)
        store.writer.on_batch = batches.append
    bad, good = await asyncio.gather(
        store.award(claim("bad", user="u", boards=(B1, B2, B3))),
        store.award(claim("good", user="v", boards=(B1, B3))),
        return_exceptions=True,
    )
    # One call of the award function, or one SQLite transaction, for both; on SQLite the batch ran
    # again without the failed write, on PostgreSQL each claim of the failed call ran alone.
    assert batches == ([2] if isinstance(store, PostgresStore) else [2, 1])
    assert isinstance(bad, (ServiceUnavailable, asyncpg.PostgresError))
    assert isinstance(good, Award)
    assert [(c.where, c.new_score) for c in good.changes] == [(B1, 10), (B3, 10)]
    assert await _written(dsn, tmp_path) == {
        "spent": [("good",)],
        "awards": [("good",)],
        "changes": [("b1", "v", 10), ("b3", "v", 10)],
        "entries": [("b1", "v", 10), ("b3", "v", 10)],
    }
    with pytest.raises(TokenAlreadyUsed):
        await store.award(claim("good", user="v", boards=(B1, B3)))


async def test_a_write_whose_period_ended_before_its_transaction_keeps_nothing(
    store: Store, dsn: str | None, tmp_path: Path
) -> None:
    # The store's clock is the real one here: long past the first end, far from the second.
    ended, later = 1000, 2**50
    await open_boards(store)
    await store.grant(grant("n1"))
    on_two = claim("n1", boards=(B1, B2))
    # The award call (PostgreSQL's plain awards) and the steps (a claim with cheat rules takes them).
    for rules in (None, HoldRules(over_per_hour=100)):
        with pytest.raises(PeriodEnded):
            await store.award(msgspec.structs.replace(on_two, ends_ms=ended, rules=rules))
        assert await _written(dsn, tmp_path) == NOTHING
    with pytest.raises(PeriodEnded):
        await store.write_score(msgspec.structs.replace(write("k", 61_000), ends_ms=ended))
    assert await _database(dsn, tmp_path, "SELECT key FROM idempotency_keys") == []  # the key is not used up
    award = await store.award(msgspec.structs.replace(on_two, ends_ms=later))
    assert [(c.where, c.new_score) for c in award.changes] == [(B1, 10), (B2, 10)]
    assert (await store.write_score(msgspec.structs.replace(write("k", 61_000), ends_ms=later))).replayed is False


async def test_a_write_for_a_user_erased_meanwhile_creates_them_anew(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: an erasure may commit between a write's creating the user (already there) and
    its lock on them; the write then creates the user anew, as for any user unknown so far."""
    store = PostgresStore(schema_dsn(pg_schema), pool_size=2)
    await store.open()
    try:
        await open_boards(store)
        await store.write_score(write("k1", 30, user="gone"))
        # The erasure commits while the write sleeps before its lock on the user.
        reached = asyncio.Event()
        held = _held_after(postgres.TRUSTED.write_score, postgres.TRUSTED.lock_user, reached)
        monkeypatch.setattr(postgres.TRUSTED, "write_score", held)
        writing = asyncio.create_task(store.write_score(write("k2", 20, user="gone")))
        await reached.wait()  # the user's row is there (made by the first write), not yet locked
        await store.erase("gone", "erased-0123456789abcdef01234567", 6000)
        outcome = await writing
        assert (outcome.username, outcome.change.previous_score, outcome.change.new_score) == ("gone", None, 20)
        assert (await store.user("gone")) is not None and await score(store, "gone", TRIAL) == 20
    finally:
        await store.close()


def _held_after(steps: Any, query: str, reached: asyncio.Event) -> Any:
    """Trusted-write steps that sleep a second in the database before `query` (their transaction
    open, the statements before it run), `reached` set as the sleep begins."""

    def held(score_write: ScoreWrite) -> Any:
        inner = steps(score_write)
        try:
            sql, args = next(inner)
            while True:
                if sql == query:
                    reached.set()
                    yield "SELECT pg_sleep(1)", ()
                sql, args = inner.send((yield sql, args))
        except StopIteration as done:
            return done.value

    return held


async def test_a_retired_board_takes_no_write(store: Store) -> None:
    """Retired since the process last looked at its catalog: refused, the key not used up."""
    await open_boards(store)
    await store.write_score(write("a", 62_000))
    await store.retire_board("trial", OPS)
    with pytest.raises(BoardNotFound):
        await store.write_score(write("b", 61_000))
    (standing,) = await store.standings("trial", "all")
    assert standing.score == 62_000


async def test_a_retirement_waits_for_the_writes_under_way(pg_schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: a write that found its board open commits before the retirement does; none after."""
    store = PostgresStore(schema_dsn(pg_schema), pool_size=3)
    await store.open()
    try:
        await open_boards(store)
        reached = asyncio.Event()
        held = _held_after(postgres.TRUSTED.write_score, postgres.TRUSTED.claim_key, reached)
        monkeypatch.setattr(postgres.TRUSTED, "write_score", held)
        writing = asyncio.create_task(store.write_score(write("a", 62_000)))
        await reached.wait()  # the write holds the board's row, shared
        retiring = asyncio.create_task(store.retire_board("trial", OPS))
        await asyncio.sleep(0.2)
        assert not retiring.done()
        assert (await writing).change.new_score == 62_000
        await retiring
        with pytest.raises(BoardNotFound):
            await store.write_score(write("b", 61_000))
    finally:
        await store.close()
