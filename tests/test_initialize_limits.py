"""`initialize` is limited per user: a rate, and a cap on unexpired unused tokens checked inside the
store's transaction; a refusal is 429 RATE_LIMITED and writes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from app.errors import InvalidToken, RateLimited
from app.storage import AwardClaim, Store, TokenGrant
from app.storage.postgres import PostgresStore
from app.storage.sqlite import SqliteStore

from .conftest import Flow, MakeClient, Snapshot, envelope, schema_dsn

INITIALIZE = "/api/v1/actions/initialize"
TTL_MS = 300_000
Bearer = Callable[..., dict[str, str]]


async def initialize(flow: Flow, user: str, action_id: str, action_type: str = "COMPLETE_QUEST") -> Any:
    return await flow.client.post(
        INITIALIZE, json={"actionType": action_type, "actionId": action_id}, headers=flow.bearer(user)
    )


async def assert_rate_limited(resp: Any) -> int:
    body = await envelope(resp)
    assert resp.status == 429 and body["error"]["code"] == "RATE_LIMITED", body
    retry_after = resp.headers["Retry-After"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    return int(retry_after)


async def test_initialize_is_rate_limited_per_user(make_client: MakeClient, bearer: Bearer, snapshot: Snapshot) -> None:
    flow = Flow(await make_client(limits={"initializes_per_minute": 2}), bearer)
    assert (await initialize(flow, "alice", "q1", "NO_SUCH_ACTION")).status == 400  # every call counts
    assert (await initialize(flow, "alice", "q1")).status == 200
    before = await snapshot()
    await assert_rate_limited(await initialize(flow, "alice", "q2"))
    # A user whose calls were all refused so far gets no row from the one over the limit either.
    for _ in range(2):
        resp = await flow.client.post(INITIALIZE, data=b"not json", headers=bearer("carol"))
        assert resp.status == 400
    await assert_rate_limited(await initialize(flow, "carol", "q1"))
    assert await snapshot() == before
    assert not any(row[0] == "carol" for row in before["users"])
    assert (await initialize(flow, "bob", "q1")).status == 200  # other users are not affected


async def test_unused_tokens_per_user_are_capped(make_client: MakeClient, bearer: Bearer, snapshot: Snapshot) -> None:
    flow = Flow(await make_client(limits={"tokens_per_user": 2}), bearer)
    first = await flow.token("alice", "q1")
    await flow.token("alice", "q2")
    before = await snapshot()
    retry_after = await assert_rate_limited(await initialize(flow, "alice", "q3"))
    assert retry_after <= TTL_MS // 1000  # when the oldest unused token expires
    assert await snapshot() == before
    assert (await flow.submit(first, "alice", "q1")).status == 200  # a used token no longer counts
    await flow.token("alice", "q3")
    await assert_rate_limited(await initialize(flow, "alice", "q4"))
    await flow.token("bob", "q1")  # other users are not affected


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of this test's own: a SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "db.sqlite")
    return schema_dsn(request.getfixturevalue("pg_schema"))


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    """Each system of record, opened on its database."""
    s: Store = PostgresStore(database, pool_size=10) if database.startswith("postgresql") else SqliteStore(database)
    await s.open()
    yield s
    await s.close()


def grant(nonce: str, *, user: str = "u", issued: int = 1_000_000) -> TokenGrant:
    return TokenGrant(
        nonce=nonce,
        token_hash=f"h-{nonce}",
        user_id=user,
        username=user.upper(),
        action_type="T",
        action_id=f"a-{nonce}",
        score_increment=10,
        issued_ms=issued,
        expires_ms=issued + TTL_MS,
    )


async def test_the_cap_counts_unexpired_unused_tokens(store: Store) -> None:
    await store.grant(grant("n1", issued=1_000_000), max_unused=2)
    await store.grant(grant("n2", issued=1_100_000), max_unused=2)
    with pytest.raises(RateLimited) as info:
        await store.grant(grant("n3", issued=1_200_000), max_unused=2)
    assert info.value.headers == {"Retry-After": "100"}  # n1 expires at 1,300,000 ms
    await store.grant(grant("other", user="v", issued=1_200_000), max_unused=2)  # per user
    # Used: no longer counts.
    claim = AwardClaim(nonce="n1", user_id="u", username="U", action_id="a-n1", min_elapsed_ms=0, now_ms=1_200_000)
    await store.award(claim)
    await store.grant(grant("n3", issued=1_200_000), max_unused=2)
    # Expired: no longer counts (n2 expired at 1,400,000, n3 at 1,500,000).
    with pytest.raises(RateLimited):
        await store.grant(grant("n4", issued=1_399_999), max_unused=2)
    await store.grant(grant("n4", issued=1_400_001), max_unused=2)
    assert (await store.user("u")) is not None


async def test_a_refused_grant_writes_nothing(store: Store) -> None:
    await store.grant(grant("n1"), max_unused=1)
    renamed = msgspec.structs.replace(grant("n2"), username="Renamed")
    with pytest.raises(RateLimited):
        await store.grant(renamed, max_unused=1)
    user = await store.user("u")
    assert user is not None and user.username == "U"  # not renamed by the refused grant
    claim = AwardClaim(nonce="n2", user_id="u", username="U", action_id="a-n2", min_elapsed_ms=0, now_ms=1_000_001)
    with pytest.raises(InvalidToken):
        await store.award(claim)  # no token row was written


@pytest.mark.parametrize("known", [False, True])
async def test_concurrent_grants_never_exceed_the_cap(store: Store, known: bool) -> None:
    if known:  # a user row exists already (its name unchanged: the upsert updates nothing)
        await store.grant(grant("first", issued=999_000), max_unused=5)
    results = await asyncio.gather(
        *(store.grant(grant(f"n{i}", issued=1_000_000 + i), max_unused=5) for i in range(20)), return_exceptions=True
    )
    assert sum(r is None for r in results) == (4 if known else 5)
    assert all(isinstance(r, RateLimited) for r in results if r is not None)
