"""The big benchmarks' data: built as a server running all along would have left it, its history
sealed onto the audit chain (a backlog would be the sealer's catching up, not what a run measures)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg

from bench.bigdata import build_postgres, build_sqlite, shelves_for

from .isolation import schema_dsn

USERS = 4500  # more than one sealing page of the build (4,000), on each of two boards


async def test_the_sqlite_history_is_built_sealed(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    await build_sqlite(path, USERS, shelves_for(USERS, 7, ["global", "weekly"]))
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM audit_queue").fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM audit_chain").fetchone() == (2 * USERS,)
        assert db.execute("SELECT COUNT(*) FROM board_entries").fetchone() == (2 * USERS,)


async def test_the_postgresql_history_is_built_sealed(pg_schema: str) -> None:
    dsn = schema_dsn(pg_schema)
    await build_postgres(pg_schema, dsn, USERS, shelves_for(USERS, 7, ["global", "weekly"]))
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT COUNT(*) FROM audit_queue") == 0
        assert await conn.fetchval("SELECT COUNT(*) FROM audit_chain") == 2 * USERS
    finally:
        await conn.close()
