"""What every store promises, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from app.errors import ActionTooFast, InvalidToken, RateLimited, TokenAlreadyUsed, TokenExpired
from app.records import TokenGrant
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
