"""What only the SQLite store has: a file's migrations and WAL, group commit, the writer's thread
and its failures. What every store promises is in test_storage.py."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.errors import ServiceUnavailable, TokenAlreadyUsed
from app.logs import request_id
from app.storage import sqlite as sqlite_module
from app.storage.schema import SQLITE, migrations
from app.storage.sqlite import SqliteStore

from .stores import claim, grant, score


def _count_batches(store: SqliteStore) -> list[int]:
    """The size of each transaction the store runs from now on."""
    batches: list[int] = []
    store.writer.on_batch = batches.append
    return batches


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "sub" / "db.sqlite"))
    await s.open()
    yield s
    await s.close()


async def test_wal_and_migrations_once(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    for _ in range(2):
        s = SqliteStore(str(path), synchronous="NORMAL")
        await s.open()
        await s.close()
        await s.close()  # idempotent
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        applied = db.execute("SELECT version FROM schema_migrations").fetchall()
        assert applied == [(version,) for version, _ in migrations(SQLITE)]
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"idx_users_score", "idx_action_tokens_expires", "idx_score_history_created"} <= indexes


async def test_a_refusal_inside_a_batch_writes_nothing_and_spares_the_others(tmp_path: Path) -> None:
    # Two tokens for one action (both issued before either was used) and other users' awards,
    # all in one transaction: one of the two is refused after its token row was touched.
    path = tmp_path / "db.sqlite"
    store = SqliteStore(str(path))
    await store.open()
    try:
        await asyncio.gather(store.grant(grant("t1")), store.grant(grant("t2")))
        await asyncio.gather(*(store.grant(grant(f"o{i}", user=f"o{i}")) for i in range(5)))
        batches = _count_batches(store)
        results = await asyncio.gather(
            store.award(claim("t1")),
            *(store.award(claim(f"o{i}", user=f"o{i}")) for i in range(5)),
            store.award(claim("t2")),
            return_exceptions=True,
        )
        assert [type(r).__name__ for r in results] == ["Award"] * 6 + ["ActionAlreadyCompleted"]
        assert batches == [7]  # one transaction
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT nonce FROM action_tokens WHERE used_at IS NOT NULL ORDER BY nonce").fetchall() == [
            ("o0",),
            ("o1",),
            ("o2",),
            ("o3",),
            ("o4",),
            ("t1",),
        ]
        assert db.execute("SELECT count(*), sum(score_change) FROM score_history").fetchone() == (6, 60)
        assert db.execute("SELECT score FROM board_entries WHERE user_id = 'u'").fetchone() == (10,)


async def test_an_award_lacking_its_attestation_writes_nothing_inside_a_batch(store: SqliteStore) -> None:
    # One transaction holds it and others, one of which spends an attestation: it is refused before
    # its first write, the others stand, and its token awards once attested.
    await asyncio.gather(store.grant(grant("t1")), store.grant(grant("t2", user="w")))
    await asyncio.gather(*(store.grant(grant(f"o{i}", user=f"o{i}")) for i in range(5)))
    await store.attest("w", "a", "referee", 1500)
    batches = _count_batches(store)
    results = await asyncio.gather(
        *(store.award(claim(f"o{i}", user=f"o{i}")) for i in range(3)),
        store.award(claim("t1", attest=True)),
        store.award(claim("t2", user="w", attest=True)),
        *(store.award(claim(f"o{i}", user=f"o{i}")) for i in range(3, 5)),
        return_exceptions=True,
    )
    assert [type(r).__name__ for r in results] == ["Award"] * 3 + ["NotAttested"] + ["Award"] * 3
    assert batches == [7]  # one transaction
    db = sqlite3.connect(store.path)
    try:
        assert db.execute("SELECT used_at FROM action_tokens WHERE nonce = 't1'").fetchone() == (None,)
        assert db.execute("SELECT count(*) FROM attestations").fetchone() == (0,)  # w's, spent
    finally:
        db.close()
    assert await score(store, "u") is None and await score(store, "w") == 10
    await store.attest("u", "a", "referee", 2500)
    assert (await store.award(claim("t1", attest=True))).new_score == 10


async def test_concurrent_awards_group_commit(store: SqliteStore) -> None:
    batches = _count_batches(store)
    await asyncio.gather(*(store.grant(grant(f"n{i}", action=f"a{i}")) for i in range(200)))
    batches.clear()
    results = await asyncio.gather(
        *(store.award(claim(f"n{i}", action=f"a{i}")) for i in range(200)),
        *(store.award(claim(f"n{i}", action=f"a{i}")) for i in range(200)),  # every token twice
        return_exceptions=True,
    )
    awards = [r for r in results if not isinstance(r, BaseException)]
    assert len(awards) == 200
    assert all(isinstance(r, TokenAlreadyUsed) for r in results if isinstance(r, BaseException))
    assert sorted(a.new_score for a in awards) == list(range(10, 2001, 10))
    assert len(batches) < 400 / 2  # many awards shared each commit
    assert await score(store, "u") == 2000


async def test_purge_deletes_in_chunks_of_its_own(store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_module, "PURGE_CHUNK", 100)
    await asyncio.gather(*(store.grant(grant(f"old{i}", issued=0, action=f"x{i}")) for i in range(250)))
    await store.grant(grant("new", issued=10_000_000, action="y"))
    writes = _count_batches(store)
    assert await store.purge_tokens(1_000_000) == 250
    assert writes == [1, 1, 1]  # 100, 100, 50: each chunk its own short transaction
    assert await store.purge_tokens(1_000_000) == 0
    assert (await store.award(claim("new", action="y", now=10_000_500))).new_score == 10


async def test_waiting_for_another_writer_does_not_hold_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    store = SqliteStore(str(path))
    await store.open()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        write = asyncio.ensure_future(store.grant(grant("n1")))
        ticks = 0
        for _ in range(5):  # the loop keeps running while the grant waits for the lock
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 5 and not write.done()
        other.execute("COMMIT")
        await asyncio.wait_for(write, 5)
        assert (await store.award(claim("n1"))).new_score == 10
    finally:
        other.close()
        await store.close()


async def test_a_stopped_writer_fails_its_waiters_and_refuses_later_writes(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "db.sqlite"))
    await store.open()
    try:
        other = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # keeps the writer waiting for the lock
        waiting = [asyncio.ensure_future(store.grant(grant(f"n{i}", action=f"a{i}"))) for i in range(3)]
        await asyncio.sleep(0.05)
        assert store.writer.running
        await store.writer.stop()
        results = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 5)
        assert all(isinstance(r, ServiceUnavailable) for r in results), results
        other.execute("COMMIT")
        other.close()
        with pytest.raises(ServiceUnavailable):
            await store.grant(grant("later"))
        with pytest.raises(ServiceUnavailable):
            await store.ping()
    finally:
        await store.close()


async def test_closed_store_refuses(tmp_path: Path) -> None:
    s = SqliteStore(str(tmp_path / "db.sqlite"))
    with pytest.raises(ServiceUnavailable):
        await s.ping()
    await s.open()
    await s.close()
    with pytest.raises(ServiceUnavailable):
        await s.grant(grant("n"))


async def test_pending_writes_finish_on_close(tmp_path: Path) -> None:
    s = SqliteStore(str(tmp_path / "db.sqlite"))
    await s.open()
    writes = [asyncio.ensure_future(s.grant(grant(f"n{i}", action=f"a{i}"))) for i in range(50)]
    await asyncio.sleep(0)
    await s.close()
    await asyncio.gather(*writes)
    with sqlite3.connect(tmp_path / "db.sqlite") as db:
        assert db.execute("SELECT count(*) FROM action_tokens").fetchone() == (50,)


async def test_failed_batch_reports_unavailable(store: SqliteStore, caplog: pytest.LogCaptureFixture) -> None:
    def broken(size: int) -> None:  # fails the batch as a failed transaction would
        raise sqlite3.OperationalError("disk I/O error at /secret/path")

    store.writer.on_batch = broken
    rid = request_id.set("req-failing-1")
    try:
        with pytest.raises(ServiceUnavailable) as info:
            await store.grant(grant("n"))
    finally:
        request_id.reset(rid)
    # The answer says the write failed, nothing of why; the log has why, and for which request.
    assert info.value.details is None and "secret" not in info.value.message
    (record,) = [r for r in caplog.records if "write batch" in r.getMessage()]
    assert record.correlationIds == ["req-failing-1"]  # type: ignore[attr-defined]
    assert record.exc_info is not None and "/secret/path" in str(record.exc_info[1])
