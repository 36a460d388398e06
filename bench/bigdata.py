"""The big board's data: N generated users with their reference ranks, written straight into a
fresh SQLite file or PostgreSQL schema (the server's own migrations first), and removed after."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from app.records import UserRecord
from app.storage.postgres import PostgresStore
from app.storage.sqlite import SqliteStore

from . import storage

MAX_SCORE = 1_000_000
TIE_SHARE = 0.1  # share of users whose score is rounded to a multiple of TIE_STEP: many ties
TIE_STEP = 10_000
USER_COLUMNS = ("id", "username", "score", "score_seq", "last_score_update", "created_at", "updated_at")


@dataclass
class Population:
    """The users written to the store: user i is `user-i`; score_seq values are a permutation of 1..N."""

    scores: list[int]
    seqs: list[int]
    _order: list[int] = field(default_factory=list)  # sorted rank keys, built on first use

    @classmethod
    def generate(cls, users: int, seed: int) -> Population:
        rng = random.Random(seed)
        scores = []
        for _ in range(users):
            score = rng.randint(0, MAX_SCORE)
            scores.append(score // TIE_STEP * TIE_STEP if rng.random() < TIE_SHARE else score)
        seqs = list(range(1, users + 1))
        rng.shuffle(seqs)
        return cls(scores=scores, seqs=seqs)

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def user_id(i: int) -> str:
        return f"user-{i}"

    def rows(self, now_ms: int) -> Iterator[tuple[str, str, int, int, int, int, int]]:
        """Rows of `users` in USER_COLUMNS order."""
        for i, (score, seq) in enumerate(zip(self.scores, self.seqs, strict=True)):
            yield (self.user_id(i), f"Player {i}", score, seq, now_ms, now_ms, now_ms)

    def _key(self, i: int) -> int:
        # Ascending key = board order: score descending, then the lower score_seq first.
        return (MAX_SCORE - self.scores[i]) * (len(self) + 1) + self.seqs[i]

    def reference_rank(self, i: int) -> int:
        """1 + users with a higher score, or the same score and a lower score_seq."""
        if not self._order:
            self._order = sorted(self._key(j) for j in range(len(self)))
        return bisect.bisect_left(self._order, self._key(i)) + 1

    def picks(self, count: int, seed: str) -> list[int]:
        rng = random.Random(seed)
        return [rng.randrange(len(self)) for _ in range(count)]


@dataclass
class Storage:
    """Where the server's data lives for this run; removed afterwards."""

    sqlite_path: Path
    redis_url: str | None = None
    redis_prefix: str | None = None
    schema: str | None = None
    database_url: str | None = None


# -- building the database ------------------------------------------------------------------


def _insert_sqlite(path: Path, population: Population) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA synchronous = OFF")  # bench data only
        with db:  # one transaction
            db.executemany(
                f"INSERT INTO users ({', '.join(USER_COLUMNS)}) VALUES ({', '.join('?' * len(USER_COLUMNS))})",
                population.rows(int(time.time() * 1000)),
            )


async def build_sqlite(path: Path, population: Population) -> None:
    """The store's own migrations, then every user in one transaction."""
    store = SqliteStore(str(path))
    await store.open()
    await store.close()
    await asyncio.to_thread(_insert_sqlite, path, population)


async def build_postgres(schema: str, database_url: str, population: Population) -> None:
    """The store's own migrations in `schema`, then every user with COPY."""
    store = PostgresStore(database_url, pool_size=1)
    await store.open()
    await store.close()
    conn = await asyncpg.connect(storage.POSTGRES_URL)
    try:
        rows = list(population.rows(int(time.time() * 1000)))
        await conn.copy_records_to_table("users", records=rows, columns=list(USER_COLUMNS), schema_name=schema)
        await conn.execute(f'ANALYZE "{schema}".users')
    finally:
        await conn.close()


async def prepare(mode: str, population: Population, place: Storage) -> None:
    """Fill `place` (already named, so that clean-up knows what to remove) for the mode."""
    if mode in ("redis", "postgres") and not await storage.redis_reachable():
        raise RuntimeError(f"{mode} mode needs Redis at {storage.REDIS_URL}")
    if mode == "postgres":
        assert place.schema is not None
        place.database_url = await storage.create_schema(place.schema)
        await build_postgres(place.schema, place.database_url, population)
    else:
        await build_sqlite(place.sqlite_path, population)


def storage_for(mode: str, workdir: Path) -> Storage:
    """Name the places of a run of `mode` (nothing is created yet)."""
    place = Storage(sqlite_path=workdir / "bench.db")  # the file scoreboard_process points the server at
    if mode in ("redis", "postgres"):
        place.redis_url, place.redis_prefix = storage.REDIS_URL, storage.unique_name("big")
    if mode == "postgres":
        place.schema = storage.unique_name("big")
    return place


async def clean_up(place: Storage) -> dict[str, Any]:
    """Remove the run's Redis keys and PostgreSQL schema (each tried even if the other fails)."""
    removed: dict[str, Any] = {}
    try:
        if place.redis_prefix is not None:
            removed["redis_keys_removed"] = await storage.drop_redis_prefix(place.redis_prefix)
    finally:
        if place.schema is not None:
            await storage.drop_schema(place.schema)
            removed["schema_dropped"] = place.schema
    return removed


async def read_standings(place: Storage) -> tuple[list[UserRecord], float]:
    """What the server's rebuild reads first, timed here alone: `store.standings()`."""
    store: SqliteStore | PostgresStore
    store = (
        PostgresStore(place.database_url, pool_size=1) if place.database_url else SqliteStore(str(place.sqlite_path))
    )
    await store.open()
    try:
        started = time.perf_counter()
        records = await store.standings()
        return records, time.perf_counter() - started
    finally:
        await store.close()
