"""What every store promises, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.errors import ActionTooFast, InvalidToken, TokenAlreadyUsed, TokenExpired
from app.storage import Store
from app.storage.postgres import PostgresStore
from app.storage.sqlite import SqliteStore

from .conftest import schema_dsn
from .test_storage_sqlite import claim, grant


@pytest.fixture(params=["sqlite", "postgres"])
def dsn(request: pytest.FixtureRequest) -> str | None:
    """The PostgreSQL schema of this test, or None for SQLite."""
    return schema_dsn(request.getfixturevalue("pg_schema")) if request.param == "postgres" else None


@pytest.fixture
async def store(dsn: str | None, tmp_path: Path) -> AsyncIterator[Store]:
    s: Store = PostgresStore(dsn, pool_size=2) if dsn else SqliteStore(str(tmp_path / "db.sqlite"))
    await s.open()
    yield s
    await s.close()


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
