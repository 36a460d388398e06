"""The stores under test: SQLite and PostgreSQL behind one fixture, and the records the store tests
write with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.records import AwardClaim, BoardPeriod, TokenGrant
from app.storage import Store
from app.storage.postgres import PostgresStore
from app.storage.sqlite import SqliteStore

from .isolation import schema_dsn


def grant(nonce: str, *, user: str = "u", action: str = "a", issued: int = 1000, score: int = 10) -> TokenGrant:
    return TokenGrant(
        nonce=nonce,
        token_hash=f"h-{nonce}",
        user_id=user,
        username=user.upper(),
        action_type="T",
        action_id=action,
        score_increment=score,
        issued_ms=issued,
        expires_ms=issued + 300_000,
    )


GLOBAL = BoardPeriod(board="global", period="all")


def claim(
    nonce: str,
    *,
    user: str = "u",
    action: str = "a",
    now: int = 2000,
    min_ms: int = 0,
    action_type: str = "T",
    boards: tuple[BoardPeriod, ...] = (GLOBAL,),
    attest: bool = False,
) -> AwardClaim:
    return AwardClaim(
        nonce=nonce,
        user_id=user,
        username=user.upper(),
        action_type=action_type,
        action_id=action,
        min_elapsed_ms=min_ms,
        now_ms=now,
        boards=boards,
        attest=attest,
    )


async def score(store: Store, user: str, where: BoardPeriod = GLOBAL) -> int | None:
    """A user's score on a board period, None when not on it."""
    found = [s.score for s in await store.standings(where.board, where.period) if s.user_id == user]
    return found[0] if found else None


@pytest.fixture(params=["sqlite", "postgres"])
def dsn(request: pytest.FixtureRequest) -> str | None:
    """The PostgreSQL schema of this test, or None for SQLite."""
    return schema_dsn(request.getfixturevalue("pg_schema")) if request.param == "postgres" else None


def open_store(dsn: str | None, tmp_path: Path) -> Store:
    return PostgresStore(dsn, pool_size=2) if dsn else SqliteStore(str(tmp_path / "db.sqlite"))


@pytest.fixture
async def store(dsn: str | None, tmp_path: Path) -> AsyncIterator[Store]:
    s = open_store(dsn, tmp_path)
    await s.open()
    yield s
    await s.close()
