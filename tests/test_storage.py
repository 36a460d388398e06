"""What every store promises, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import msgspec
import pytest

from app.errors import (
    ActionAlreadyCompleted,
    ActionTooFast,
    InvalidToken,
    RateLimited,
    TokenAlreadyUsed,
    TokenExpired,
)
from app.records import Award, AwardClaim, BoardPeriod, HoldRules, NoticeDraft, TokenGrant
from app.storage import Store, postgres, sqlite
from app.storage.awarding import AWARD_FUNCTION
from app.storage.postgres import PostgresStore
from app.storage.schema import POSTGRES, SQLITE, Dialect
from app.storage.steps import AllRows, Row, Steps

from .isolation import schema_dsn
from .stores import GLOBAL, claim, grant, open_store, score


async def test_a_migrated_database_opens_again(store: Store, dsn: str | None, tmp_path: Path) -> None:
    # Its migrations are recorded: a second store (a restart, another process) applies none
    # again and sees what the first wrote.
    await store.grant(grant("n1"))
    await store.award(claim("n1"))
    again = open_store(dsn, tmp_path)
    await again.open()
    try:
        assert await score(again, "u") == 10
    finally:
        await again.close()


async def test_award_once(store: Store) -> None:
    await store.grant(grant("n1"))
    award = await store.award(claim("n1"))
    assert (award.previous_score, award.new_score, award.score_increment) == (0, 10, 10)
    with pytest.raises(TokenAlreadyUsed):
        await store.award(claim("n1"))
    (standing,) = await store.standings("global", "all")
    assert (standing.user_id, standing.score, standing.seq) == ("u", 10, award.changes[0].seq)


async def test_refusals_change_nothing(store: Store) -> None:
    await store.grant(grant("slow", issued=1000))
    with pytest.raises(ActionTooFast):
        await store.award(claim("slow", now=1500, min_ms=1000))
    with pytest.raises(InvalidToken):
        await store.award(claim("unknown"))
    with pytest.raises(InvalidToken):
        await store.award(claim("slow", user="other"))
    assert (await store.award(claim("slow", now=2500, min_ms=1000))).new_score == 10


async def test_a_claim_for_another_action_is_not_this_token(store: Store) -> None:
    await store.grant(grant("n1", action="a"))
    with pytest.raises(InvalidToken):
        await store.award(claim("n1", action="b"))
    assert (await store.award(claim("n1", action="a"))).new_score == 10


async def test_one_action_per_user(store: Store) -> None:
    await store.grant(grant("n1"))
    await store.grant(grant("n2"))
    await store.award(claim("n1"))
    with pytest.raises(ActionAlreadyCompleted):
        await store.award(claim("n2"))
    with pytest.raises(ActionAlreadyCompleted):
        await store.grant(grant("n3"))
    assert await score(store, "u") == 10


async def test_refused_grant_leaves_the_user_row_alone(store: Store) -> None:
    await store.grant(grant("n1"))
    await store.award(claim("n1"))
    renamed = TokenGrant(
        nonce="n2",
        token_hash="h-n2",
        user_id="u",
        username="NEW NAME",
        action_type="T",
        action_id="a",
        score_increment=10,
        issued_ms=5000,
        expires_ms=305_000,
    )
    with pytest.raises(ActionAlreadyCompleted):
        await store.grant(renamed)
    user = await store.user("u")
    assert user is not None and user.username == "U"


async def test_standings_hold_the_users_with_an_award(store: Store) -> None:
    await store.grant(grant("n1", user="u"))
    await store.grant(grant("n2", user="v"))
    assert await store.standings("global", "all") == []  # granted only: a user row, not on the board
    user = await store.user("v")
    assert user is not None and user.username == "V"
    assert await store.user("nobody") is None
    award = await store.award(claim("n2", user="v", now=5000))
    (standing,) = await store.standings("global", "all")
    assert (standing.user_id, standing.score, standing.seq, standing.updated_ms) == (
        "v",
        10,
        award.changes[0].seq,
        5000,
    )


async def test_an_award_on_several_boards_answers_each_in_the_claims_order(store: Store) -> None:
    # The boards' rows come back from the database in no set order: each change must still be its
    # own board's, with that board's previous score (none where the user had no entry yet).
    a, b, c = (BoardPeriod(board=name, period="p") for name in ("a", "b", "c"))
    await store.grant(grant("n1", action="x1", score=5))
    await store.grant(grant("n2", action="x2", score=7))
    first = await store.award(claim("n1", action="x1", boards=(b,)))
    award = await store.award(claim("n2", action="x2", boards=(c, b, a)))
    assert [ch.where for ch in award.changes] == [c, b, a]
    assert [(ch.previous_score, ch.new_score) for ch in award.changes] == [(None, 7), (5, 12), (None, 7)]
    assert (award.previous_score, award.new_score) == (0, 7)  # the first board's numbers
    seqs = [ch.seq for ch in award.changes]
    assert len(set(seqs)) == 3 and min(seqs) > first.changes[0].seq
    for ch in award.changes:
        (standing,) = await store.standings(ch.where.board, ch.where.period)
        assert (standing.score, standing.seq) == (ch.new_score, ch.seq)


def _rows_then_first(dialect: Dialect) -> Steps[tuple[Row, Row, Row]]:
    """Steps that ask for every row of one query, the first row of another, and every row of none."""
    query = dialect.sql(
        "SELECT n FROM (SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3) AS t WHERE n >= $1 ORDER BY n"
    )
    every = yield AllRows(query), (2,)
    first = yield query, (2,)
    none = yield AllRows(query), (4,)
    return every, first, none


async def test_both_runners_send_every_row_of_an_all_rows_query_and_the_first_of_others(
    dsn: str | None, tmp_path: Path
) -> None:
    expected = (((2,), (3,)), (2,), ())
    if dsn:
        conn = await asyncpg.connect(dsn)
        try:
            assert await postgres._run(conn, _rows_then_first(POSTGRES)) == expected
        finally:
            await conn.close()
        return
    with contextlib.closing(sqlite3.connect(tmp_path / "db.sqlite")) as db:
        assert sqlite._steps(_rows_then_first(SQLITE))(db) == expected


async def test_a_sqlite_award_writes_its_boards_in_two_statements_whatever_their_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite's statements cannot write through CTEs: an award's history rows on all its boards are
    # one statement and its entries another, so an extra board costs rows, not statements.
    store = sqlite.SqliteStore(str(tmp_path / "db.sqlite"))
    await store.open()
    ran: list[str] = []
    steps = sqlite.OPS.award

    def counted(c: AwardClaim) -> Steps[Award]:
        inner = steps(c)
        try:
            query = next(inner)
            while True:
                ran.append(query[0])
                query = inner.send((yield query))
        except StopIteration as done:
            award: Award = done.value
            return award

    monkeypatch.setattr(sqlite.OPS, "award", counted)
    try:
        counts = []
        for i, boards in enumerate([(GLOBAL,), tuple(BoardPeriod(board=f"b{j}", period="p") for j in range(3))]):
            await store.grant(grant(f"n{i}", action=f"x{i}"))
            ran.clear()
            award = await store.award(claim(f"n{i}", action=f"x{i}", boards=boards))
            assert [ch.where for ch in award.changes] == list(boards)
            counts.append(len(ran))
        assert counts == [6, 6]  # spend, record, the history rows, the entries, the scores, the touch
    finally:
        await store.close()


async def test_concurrent_awards_are_exactly_once(store: Store) -> None:
    # Every token claimed twice at once, and two tokens for one action: each score read is the
    # one the previous award wrote (no award is lost), and each token and action counts once.
    await asyncio.gather(*(store.grant(grant(f"n{i}", action=f"a{i}")) for i in range(20)))
    await asyncio.gather(store.grant(grant("d1", action="dup")), store.grant(grant("d2", action="dup")))
    results = await asyncio.gather(
        *(store.award(claim(f"n{i}", action=f"a{i}")) for i in range(20)),
        *(store.award(claim(f"n{i}", action=f"a{i}")) for i in range(20)),
        store.award(claim("d1", action="dup")),
        store.award(claim("d2", action="dup")),
        return_exceptions=True,
    )
    awards = [r for r in results if not isinstance(r, BaseException)]
    refused = sorted(type(r).__name__ for r in results if isinstance(r, BaseException))
    assert refused == ["ActionAlreadyCompleted"] + ["TokenAlreadyUsed"] * 20
    assert sorted(a.new_score for a in awards) == list(range(10, 211, 10))
    assert all(a.new_score == a.previous_score + 10 for a in awards)
    assert await score(store, "u") == 210


async def test_purge_expired_tokens(store: Store) -> None:
    await store.grant(grant("old", issued=0, action="x"))
    await store.grant(grant("new", issued=10_000_000, action="y"))
    assert await store.purge_tokens(1_000_000) == 1
    with pytest.raises(InvalidToken):
        await store.award(claim("old", action="x"))


async def test_a_token_never_outlives_what_was_recorded(store: Store) -> None:
    # Recorded to expire at 301,000 ms: at that moment and after it awards nothing, whatever the
    # token's own claims said; the refusal leaves it as it was.
    await store.grant(grant("n1", issued=1000))
    with pytest.raises(TokenExpired):
        await store.award(claim("n1", now=301_000))
    with pytest.raises(TokenExpired):
        await store.award(claim("n1", now=10**12))
    assert (await store.award(claim("n1", now=300_999))).new_score == 10


async def test_the_minimum_time_is_the_recorded_action_types(store: Store) -> None:
    # The grant was recorded as action type "T". A claim that names another type (and so brings
    # another type's minimum, say none) is not this token, and changes nothing.
    await store.grant(grant("n1", issued=1000))
    with pytest.raises(InvalidToken):
        await store.award(claim("n1", now=1001, action_type="QUICK"))
    with pytest.raises(ActionTooFast):
        await store.award(claim("n1", now=1500, min_ms=30_000))
    assert (await store.award(claim("n1", now=31_000, min_ms=30_000))).new_score == 10
    with pytest.raises(TokenAlreadyUsed):
        await store.award(claim("n1", now=31_001))


def _grant(nonce: str, *, user: str = "u", issued: int = 1_000_000) -> TokenGrant:
    """A grant for an action of its own (a completed action would refuse later grants for it)."""
    return grant(nonce, user=user, action=f"a-{nonce}", issued=issued)


async def test_the_cap_counts_unexpired_unused_tokens(store: Store) -> None:
    await store.grant(_grant("n1", issued=1_000_000), max_unused=2)
    await store.grant(_grant("n2", issued=1_100_000), max_unused=2)
    with pytest.raises(RateLimited) as info:
        await store.grant(_grant("n3", issued=1_200_000), max_unused=2)
    assert info.value.headers == {"Retry-After": "100"}  # n1 expires at 1,300,000 ms
    await store.grant(_grant("other", user="v", issued=1_200_000), max_unused=2)  # per user
    # Used: no longer counts.
    await store.award(claim("n1", action="a-n1", now=1_200_000))
    await store.grant(_grant("n3", issued=1_200_000), max_unused=2)
    # Expired: no longer counts (n2 expired at 1,400,000, n3 at 1,500,000).
    with pytest.raises(RateLimited):
        await store.grant(_grant("n4", issued=1_399_999), max_unused=2)
    await store.grant(_grant("n4", issued=1_400_001), max_unused=2)
    assert (await store.user("u")) is not None


async def test_a_refused_grant_writes_nothing(store: Store) -> None:
    await store.grant(_grant("n1"), max_unused=1)
    renamed = msgspec.structs.replace(_grant("n2"), username="Renamed")
    with pytest.raises(RateLimited):
        await store.grant(renamed, max_unused=1)
    user = await store.user("u")
    assert user is not None and user.username == "U"  # not renamed by the refused grant
    with pytest.raises(InvalidToken):
        await store.award(claim("n2", action="a-n2", now=1_000_001))  # no token row was written


@pytest.mark.parametrize("known", [False, True])
async def test_concurrent_grants_never_exceed_the_cap(store: Store, known: bool) -> None:
    if known:  # a user row exists already (its name unchanged: the upsert updates nothing)
        await store.grant(_grant("first", issued=999_000), max_unused=5)
    results = await asyncio.gather(
        *(store.grant(_grant(f"n{i}", issued=1_000_000 + i), max_unused=5) for i in range(20)), return_exceptions=True
    )
    assert sum(r is None for r in results) == (4 if known else 5)
    assert all(isinstance(r, RateLimited) for r in results if r is not None)


async def test_notices_are_numbered_in_order_and_each_user_keeps_the_newest(store: Store) -> None:
    def drafts(user: str, count: int, start: int = 0) -> list[NoticeDraft]:
        return [NoticeDraft(user_id=user, type="overtaken", data=f'{{"n":{start + i}}}') for i in range(count)]

    first = await store.add_notices([*drafts("u", 60), *drafts("v", 2)], now_ms=1000)
    assert [n.id for n in first] == sorted(n.id for n in first) and len({n.id for n in first}) == 62
    assert [(n.user_id, n.data, n.created_ms) for n in first[:2]] == [("u", '{"n":0}', 1000), ("u", '{"n":1}', 1000)]
    second = await store.add_notices(drafts("u", 60, start=60), now_ms=2000)
    assert min(n.id for n in second) > max(n.id for n in first)
    kept = await store.notices("u", after=0, since_ms=0, keep=100)
    assert [n.data for n in kept] == [f'{{"n":{i}}}' for i in range(20, 120)]  # the newest 100, oldest first
    assert [n.id for n in kept] == [n.id for n in [*first, *second] if n.user_id == "u"][20:]  # as numbered
    assert await store.trim_notices(["u", "v", "nobody"], keep=100) == 20  # beyond the newest 100: u's 20
    assert await store.trim_notices(["u"], keep=100) == 0
    assert [n.data for n in await store.notices("u", after=0, since_ms=0, keep=1000)] == [n.data for n in kept]
    assert len(await store.notices("v", after=0, since_ms=0, keep=100)) == 2  # another user's stay
    assert [n.data for n in await store.notices("u", after=kept[-2].id, since_ms=0, keep=100)] == ['{"n":119}']
    assert len(await store.notices("u", after=0, since_ms=1500, keep=100)) == 60  # the kept time
    assert await store.purge_notices(1500) == 42  # u's 40 left of the first batch, and v's 2
    assert len(await store.notices("u", after=0, since_ms=0, keep=100)) == 60
    assert await store.notices("nobody", after=0, since_ms=0, keep=100) == []


async def test_pooled_postgres_connections_carry_nothing_from_one_transaction_to_the_next(pg_schema: str) -> None:
    # The pool skips asyncpg's reset query (a round trip per transaction): what it would undo must
    # never be left behind. One connection, so every transaction here runs on the same one.
    store = PostgresStore(schema_dsn(pg_schema), pool_size=1)
    await store.open()
    held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
    try:
        with pytest.raises(RuntimeError):
            async with store._transaction() as conn:
                await conn.execute("SELECT pg_advisory_xact_lock(42)")
                raise RuntimeError("fails midway")
        await store.grant(grant("n1"))
        await store.award(claim("n1"))
        await store.seal(100)  # the sealer's try-lock, taken per transaction
        assert store._pool is not None
        conn = await store._pool.acquire()
        await conn.execute("BEGIN")  # left open by a careless caller: rolled back on release
        await store._pool.release(conn)
        async with store._transaction() as conn:
            assert await conn.fetchval(held) == 0
        conn = await store._pool.acquire()
        try:
            assert not conn.is_in_transaction()
        finally:
            await store._pool.release(conn)
        assert await score(store, "u") == 10
    finally:
        await store.close()


def _count_steps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The nonces of the claims that run PostgreSQL's award steps from now on, in order."""
    stepped: list[str] = []
    steps = postgres.OPS.award

    def counted(c: AwardClaim) -> Steps[Award]:
        stepped.append(c.nonce)
        return steps(c)

    monkeypatch.setattr(postgres.OPS, "award", counted)
    return stepped


async def test_a_plain_postgres_award_is_one_call_and_a_refusal_takes_the_steps(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A claim with no attestation, rule or back-off goes in a call of the award function; what it
    # cannot award (a spent token, a repeated action) keeps nothing there and runs the shared
    # steps, which say why. Either way the same rows: the steps are counted to tell the paths apart.
    store = PostgresStore(schema_dsn(pg_schema))
    await store.open()
    stepped = _count_steps(monkeypatch)
    side = BoardPeriod(board="side", period="all")
    try:
        await store.grant(grant("n1"))
        await store.grant(grant("n2", action="b"))
        first = await store.award(claim("n1"))
        assert stepped == [] and (first.previous_score, first.new_score) == (0, 10)
        second = await store.award(claim("n2", action="b", boards=(side, GLOBAL)))
        assert stepped == [] and [c.where for c in second.changes] == [side, GLOBAL]
        assert [(c.previous_score, c.new_score) for c in second.changes] == [(None, 10), (10, 20)]
        assert (second.previous_score, second.new_score) == (0, 10)  # the first board's numbers
        assert second.changes[1].seq > first.changes[0].seq
        with pytest.raises(TokenAlreadyUsed):
            await store.award(claim("n1"))
        assert stepped == ["n1"]
        assert await score(store, "u") == 20
        (standing,) = await store.standings("side", "all")
        assert (standing.score, standing.seq) == (10, second.changes[0].seq)
    finally:
        await store.close()


async def test_a_turns_postgres_awards_are_one_call_in_the_order_they_came(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The awards of one loop turn go in one call of the award function, their history ids in the
    # order they came (ties on a board follow it); what the call cannot award (a spent token, a
    # repeated action: its token was spent, then put back) runs the steps alone, which say why.
    store = PostgresStore(schema_dsn(pg_schema))
    await store.open()
    calls: list[int] = []
    store._at_once.observe(calls.append)
    stepped = _count_steps(monkeypatch)
    side = BoardPeriod(board="side", period="all")
    try:
        users = [f"p{i}" for i in (3, 1, 4, 0, 2)]  # not in the order of their ids
        for user in users:
            await store.grant(grant(f"n-{user}", user=user))
        await store.grant(grant("spent", user="p1", action="s"))
        await store.grant(grant("again", user="p4"))  # the same action as n-p4
        await store.award(claim("spent", user="p1", action="s"))
        assert calls == [1]
        results = await asyncio.gather(
            *(store.award(claim(f"n-{user}", user=user, boards=(GLOBAL, side))) for user in users[:3]),
            store.award(claim("spent", user="p1", action="s")),
            store.award(claim("again", user="p4")),
            *(store.award(claim(f"n-{user}", user=user, boards=(GLOBAL, side))) for user in users[3:]),
            return_exceptions=True,
        )
        assert calls == [1, 7]
        assert sorted(stepped) == ["again", "spent"]
        assert [type(r).__name__ for r in results[3:5]] == ["TokenAlreadyUsed", "ActionAlreadyCompleted"]
        awards = [r for r in results if isinstance(r, Award)]
        assert [a.user_id for a in awards] == users
        for board in (0, 1):
            seqs = [a.changes[board].seq for a in awards]
            assert seqs == sorted(seqs)
        scores = [(a.changes[0].new_score, a.changes[1].new_score) for a in awards]
        assert scores == [(10, 10), (20, 10), (10, 10), (10, 10), (10, 10)]  # p1 had 10
        # The repeated action's token was put back: unused, as the steps alone would leave it.
        assert store._pool is not None
        used = await store._pool.fetchval("SELECT used_at FROM action_tokens WHERE nonce = 'again'")
        assert used is None
        standings = await store.standings("side", "all")
        assert [s.user_id for s in sorted(standings, key=lambda s: s.seq)] == users
    finally:
        await store.close()


_WAITING = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1"


@contextlib.asynccontextmanager
async def _store_and_other(pg_schema: str) -> AsyncIterator[tuple[PostgresStore, asyncpg.Connection]]:
    """A store and another connection to its schema, for a transaction of the test's own."""
    store = PostgresStore(schema_dsn(pg_schema))
    await store.open()
    other = await asyncpg.connect(schema_dsn(pg_schema))
    try:
        yield store, other
    finally:
        await other.close()
        await store.close()


async def _until_waiting(store: PostgresStore, statement: str = AWARD_FUNCTION) -> None:
    """Until a statement of the store's containing `statement` (by default a call of the award
    function) waits for a lock. (Asked on the store's pool: a transaction sees pg_stat_activity as
    it was at its first look.)"""
    assert store._pool is not None
    async with asyncio.timeout(10):
        while await store._pool.fetchval(_WAITING, f"%{statement}%") == 0:
            await asyncio.sleep(0.01)


async def test_a_call_of_postgres_awards_that_fails_leaves_each_to_run_alone(
    pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Another transaction holding an entry the call needs while waiting for one the call holds (no
    # write of the service's locks so, but a call can fail): PostgreSQL ends the call, which keeps
    # nothing, and each of its claims then runs on its own, exactly once.
    async with _store_and_other(pg_schema) as (store, other):
        for user in ("x", "y"):
            await store.grant(grant(f"first-{user}", user=user))
            await store.award(claim(f"first-{user}", user=user))
            await store.grant(grant(f"n-{user}", user=user, action="b"))
        async with other.transaction():
            # Only the call's backend looks for the deadlock (after its 1 s): it is the one ended.
            await other.execute("SET LOCAL deadlock_timeout = '60s'")
            await other.execute("SELECT 1 FROM board_entries WHERE user_id = 'x' FOR UPDATE")
            both = asyncio.gather(
                store.award(claim("n-y", user="y", action="b")), store.award(claim("n-x", user="x", action="b"))
            )
            await _until_waiting(store)  # it placed y and waits for x
            await other.execute("UPDATE board_entries SET updated_at = updated_at WHERE user_id = 'y'")
        ay, ax = await both
        assert (ay.user_id, ay.new_score, ax.user_id, ax.new_score) == ("y", 20, "x", 20)
        assert "each runs on its own" in caplog.text
        assert (await score(store, "x"), await score(store, "y")) == (20, 20)
        assert store._pool is not None
        assert await store._pool.fetchval("SELECT count(*) FROM score_history") == 4


async def test_a_call_of_postgres_awards_locks_a_token_before_its_user_as_an_award_alone_does(
    pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    # An award's own transaction spends its token, then locks its user: a call holding the user
    # while it waited for the token would deadlock with it (a repeated action's claim, put back
    # and run alone, against a retry of the same token in the next call).
    async with _store_and_other(pg_schema) as (store, other):
        await store.grant(grant("n1"))
        async with other.transaction():
            await other.execute("SET LOCAL lock_timeout = '5s'")
            await other.execute("UPDATE action_tokens SET used_at = NULL WHERE nonce = 'n1'")  # as SPEND
            award = asyncio.ensure_future(store.award(claim("n1")))
            await _until_waiting(store)  # for the token
            await other.execute("SELECT 1 FROM users WHERE id = 'u' FOR UPDATE")  # not held by the call
        assert (await award).new_score == 10
        assert "each runs on its own" not in caplog.text


async def test_a_postgres_write_ended_to_break_a_deadlock_runs_again(
    pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    # An award's own transaction locks its token, then its user; an erasure locks the user, then
    # deletes the tokens. At once, PostgreSQL ends one of them, which kept nothing: it runs again
    # rather than answer 500 (here the award, in its steps: a cheat rule is checked).
    async with _store_and_other(pg_schema) as (store, other):
        await store.grant(grant("n1"))
        ruled = msgspec.structs.replace(claim("n1"), rules=HoldRules(over_per_hour=100))
        async with other.transaction():
            # Only the award's backend looks for the deadlock (after its 1 s): it is the one ended.
            await other.execute("SET LOCAL deadlock_timeout = '60s'")
            await other.execute("SELECT 1 FROM users WHERE id = 'u' FOR UPDATE")  # as an erasure
            award = asyncio.ensure_future(store.award(ruled))
            await _until_waiting(store, "recorded AS")  # it spent the token and waits for the user
            await other.execute("UPDATE action_tokens SET expires_at = expires_at WHERE nonce = 'n1'")
        assert (await award).new_score == 10
        assert "it runs again (try 2)" in caplog.text
        assert await score(store, "u") == 10
