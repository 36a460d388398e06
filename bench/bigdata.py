"""The big boards' data: N generated users with their reference ranks on each of K boards,
written straight into a fresh SQLite file or PostgreSQL schema (the server's own migrations
first) as the server writes them: a `users` row per user, and per board period one
`board_entries` row per user whose `seq` is the id of its `board_history` row; removed after."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from app.audit.sealer import Sealer
from app.records import Standing
from app.storage.postgres import PostgresStore
from app.storage.sqlite import SqliteStore

from . import storage
from .server import ServerProcess, scoreboard_process

# Rows sealed per transaction while building: bigger pages than the server's (fewer commits), with
# a statement's parameters (6 per chain entry) within both databases' limits.
SEAL_PAGE = 4000

MAX_SCORE = 1_000_000
TIE_SHARE = 0.1  # share of users whose score is rounded to a multiple of TIE_STEP: many ties
TIE_STEP = 10_000
USER_COLUMNS = ("id", "username", "created_at", "updated_at")
HISTORY_COLUMNS = ("id", "board", "period", "user_id", "value", "new_score", "created_at")
ENTRY_COLUMNS = ("board", "period", "user_id", "score", "seq", "updated_at")
DEFAULT_BOARD, NEVER_PERIOD = "global", "all"  # the board the routes without a board read


@dataclass
class Population:
    """The entries of one board: user i is `user-i`; seqs are a permutation of 1..N (a shelf adds
    its offset, which keeps the order)."""

    scores: list[int]
    seqs: list[int]
    _by_rank: list[int] = field(default_factory=list)  # user indexes in board order, built on first use
    _rank_of: list[int] = field(default_factory=list)  # user index -> rank

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

    def _order(self) -> None:
        if not self._by_rank:
            # Board order: score descending, then the lower seq first.
            scores, seqs = self.scores, self.seqs
            self._by_rank = sorted(range(len(self)), key=lambda i: (-scores[i], seqs[i]))
            rank_of = [0] * len(self)
            for rank, i in enumerate(self._by_rank, start=1):
                rank_of[i] = rank
            self._rank_of = rank_of

    def reference_rank(self, i: int) -> int:
        """1 + users with a higher score, or the same score and a lower seq."""
        self._order()
        return self._rank_of[i]

    def at_rank(self, rank: int) -> int:
        """The user index at a 1-based rank."""
        self._order()
        return self._by_rank[rank - 1]

    def picks(self, count: int, seed: str) -> list[int]:
        return picks(count, len(self), seed)


def picks(count: int, below: int, seed: str) -> list[int]:
    """`count` numbers in 0 .. below-1, the same for the same seed."""
    rng = random.Random(seed)
    return [rng.randrange(below) for _ in range(count)]


@dataclass
class Shelf:
    """One board period's entries: a population, its history ids from `first_seq` + 1 on."""

    board: str
    period: str
    population: Population
    first_seq: int = 0

    def history(self, now_ms: int) -> Iterator[tuple[int, str, str, str, int, int, int]]:
        """Rows of `board_history` in HISTORY_COLUMNS order: one write per entry."""
        board, period, base = self.board, self.period, self.first_seq
        for i, (score, seq) in enumerate(zip(self.population.scores, self.population.seqs, strict=True)):
            yield (base + seq, board, period, f"user-{i}", score, score, now_ms)

    def entries(self, now_ms: int) -> Iterator[tuple[str, str, str, int, int, int]]:
        """Rows of `board_entries` in ENTRY_COLUMNS order."""
        board, period, base = self.board, self.period, self.first_seq
        for i, (score, seq) in enumerate(zip(self.population.scores, self.population.seqs, strict=True)):
            yield (board, period, f"user-{i}", score, base + seq, now_ms)


def shelves_for(users: int, seed: int, boards: Sequence[str], period: str = NEVER_PERIOD) -> list[Shelf]:
    """A population of `users` on each board (the first with `seed`, the others with their own
    seeds), history ids one after the other."""
    return [
        Shelf(board, period, Population.generate(users, seed + k), first_seq=k * users)
        for k, board in enumerate(boards)
    ]


def user_rows(users: int, now_ms: int) -> Iterator[tuple[str, str, int, int]]:
    """Rows of `users` in USER_COLUMNS order."""
    for i in range(users):
        yield (f"user-{i}", f"Player {i}", now_ms, now_ms)


@dataclass
class Storage:
    """Where the server's data lives for this run; removed afterwards."""

    sqlite_path: Path
    redis_url: str | None = None
    redis_prefix: str | None = None
    schema: str | None = None
    database_url: str | None = None


# -- building the database ------------------------------------------------------------------


def _insert(table: str, columns: Sequence[str], mark: str = "?") -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(mark * len(columns))})"


def _insert_sqlite(path: Path, users: int, shelves: Sequence[Shelf]) -> None:
    now = int(time.time() * 1000)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA synchronous = OFF")  # bench data only
        with db:  # one transaction
            db.executemany(_insert("users", USER_COLUMNS), user_rows(users, now))
            for shelf in shelves:
                db.executemany(_insert("board_history", HISTORY_COLUMNS), shelf.history(now))
                db.executemany(_insert("board_entries", ENTRY_COLUMNS), shelf.entries(now))
        db.execute("ANALYZE")


async def _sealed(store: SqliteStore | PostgresStore) -> None:
    """Seal the history written onto the audit chain, as a server running all along would have.
    Left queued, the server would spend its first minutes sealing it (about 2 min for 1M rows),
    every award sharing the database with those pages: a backlog, not what the run measures."""
    await store.open()
    try:
        await Sealer(store, page=SEAL_PAGE).catch_up()
    finally:
        await store.close()


async def build_sqlite(path: Path, users: int, shelves: Sequence[Shelf]) -> None:
    """The store's own migrations, then every user and entry in one transaction (AUTOINCREMENT
    goes on after the history ids written), then the history sealed."""
    store = SqliteStore(str(path))
    await store.open()
    await store.close()
    await asyncio.to_thread(_insert_sqlite, path, users, shelves)
    await _sealed(SqliteStore(str(path), synchronous="NORMAL"))


async def build_postgres(schema: str, database_url: str, users: int, shelves: Sequence[Shelf]) -> None:
    """The store's own migrations in `schema`, then every row with COPY; the history's numbering
    goes on after the ids written, as the server's own inserts need."""
    store = PostgresStore(database_url, pool_size=1)
    await store.open()
    await store.close()
    # On the schema's own search_path: the audit triggers COPY fires name its queue unqualified.
    conn = await asyncpg.connect(database_url)
    now = int(time.time() * 1000)
    try:
        copy = conn.copy_records_to_table
        await copy("users", records=user_rows(users, now), columns=list(USER_COLUMNS), schema_name=schema)
        for shelf in shelves:
            await copy("board_history", records=shelf.history(now), columns=list(HISTORY_COLUMNS), schema_name=schema)
            await copy("board_entries", records=shelf.entries(now), columns=list(ENTRY_COLUMNS), schema_name=schema)
        table = f'"{schema}".board_history'
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
        )
        for name in ("users", "board_history", "board_entries"):
            await conn.execute(f'ANALYZE "{schema}".{name}')
    finally:
        await conn.close()
    await _sealed(PostgresStore(database_url, pool_size=1))


async def prepare(mode: str, users: int, shelves: Sequence[Shelf], place: Storage) -> None:
    """Fill `place` (already named, so that clean-up knows what to remove) for the mode."""
    if mode in ("redis", "postgres") and not await storage.redis_reachable():
        raise RuntimeError(f"{mode} mode needs Redis at {storage.REDIS_URL}")
    if mode == "postgres":
        assert place.schema is not None
        place.database_url = await storage.create_schema(place.schema)
        await build_postgres(place.schema, place.database_url, users, shelves)
    else:
        await build_sqlite(place.sqlite_path, users, shelves)


def serve(place: Storage, workdir: Path, *, port: int, token_ttl: int, **config: Any) -> ServerProcess:
    """`run.py` on the place's data (its SQLite file, Redis prefix, PostgreSQL schema), one
    process; `config` as scoreboard_process takes it (boards, actions)."""
    return scoreboard_process(
        workdir,
        port=port,
        redis_url=place.redis_url,
        database_url=place.database_url,
        redis_prefix=place.redis_prefix,
        token_ttl=token_ttl,
        workers=1,
        **config,
    )


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


async def read_standings(place: Storage, board: str, period: str) -> tuple[list[Standing], float]:
    """What the server's rebuild reads first for one board period, timed here alone:
    `store.standings(board, period)`."""
    store: SqliteStore | PostgresStore
    store = (
        PostgresStore(place.database_url, pool_size=1) if place.database_url else SqliteStore(str(place.sqlite_path))
    )
    await store.open()
    try:
        started = time.perf_counter()
        standings = await store.standings(board, period)
        return standings, time.perf_counter() - started
    finally:
        await store.close()
