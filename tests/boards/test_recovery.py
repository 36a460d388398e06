"""Boards survive what the one board survived: a restart across a period's end (in every storage
set-up), a Redis flush (every board and kept period comes back from the database)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.api.keys import OVERTAKES, STORE
from app.ranking.redis import RedisRanking
from app.records import BoardPeriod

from ..conftest import Flow
from ..contracts import eventually
from ..isolation import REDIS_URL, schema_dsn
from ..real_servers import RedisServer
from .scene import BOARDS, NEXT_MONDAY_MS, AppClient, Boards, Clock, app_with_clock, boards_config


async def test_a_restart_across_a_boundary_comes_up_in_the_right_period(
    aiohttp_client: Any, db_path: Path, storage: dict[str, Any], bearer: Any
) -> None:
    config, clock = boards_config(db_path, storage), Clock(NEXT_MONDAY_MS - 60_000)
    client: AppClient = await aiohttp_client(app_with_clock(config, clock))
    await Flow(client, bearer).award("alice", "q1")
    await client.close()
    # Down over the boundary; up an hour into the next week.
    clock.now_ms = NEXT_MONDAY_MS + 3_600_000
    client = await aiohttp_client(app_with_clock(config, clock))
    boards = Boards(client, bearer)
    assert await boards.top("weekly") == []
    assert await boards.top("weekly", period="previous") == [("alice", 100)]
    assert await boards.top("global") == [("alice", 100)]
    answer = await Flow(client, bearer).award("alice", "q2")
    weekly = next(b for b in answer["boards"] if b["board"] == "weekly")
    assert (weekly["period"], weekly["previousScore"], weekly["newScore"]) == ("2026-W50", 0, 100)


async def test_a_retired_board_the_configuration_brings_back_comes_back_with_its_entries(
    aiohttp_client: Any, db_path: Path, storage: dict[str, Any], bearer: Any
) -> None:
    clock = Clock()
    client: AppClient = await aiohttp_client(app_with_clock(boards_config(db_path, storage), clock))
    await Boards(client, bearer).write("trial", {"userId": "cid", "score": 61_000})
    await client.app[STORE].retire_board("trial")
    ranking = client.app[OVERTAKES].ranking
    if isinstance(ranking, RedisRanking):  # the keys of its periods go, as the sweep lets them
        assert await ranking.unlink([BoardPeriod(board="trial", period="all", ascending=True)]) == 2
    await client.close()
    # An edited declaration of the board: applied at start, it brings the board back.
    edited = {**BOARDS, "trial": {**BOARDS["trial"], "title": "Time trial, again"}}
    client = await aiohttp_client(app_with_clock(boards_config(db_path, storage, boards=edited), clock))
    boards = Boards(client, bearer)
    assert await boards.top("trial") == [("cid", 61_000)]
    await boards.write("trial", {"userId": "dan", "score": 60_000}, key="k2")
    assert await boards.top("trial") == [("dan", 60_000), ("cid", 61_000)]


async def test_redis_flush_brings_back_every_board_and_kept_period(
    aiohttp_client: Any, db_path: Path, bearer: Any, private_redis: RedisServer, pg_schema: str
) -> None:
    for storage in (
        {"redis_url": private_redis.url, "redis_prefix": "sqlite"},
        {"redis_url": private_redis.url, "redis_prefix": "pg", "database_url": schema_dsn(pg_schema)},
    ):
        clock = Clock(NEXT_MONDAY_MS - 60_000)
        client: AppClient = await aiohttp_client(app_with_clock(boards_config(db_path, storage), clock))
        flow, boards = Flow(client, bearer), Boards(client, bearer)
        await flow.award("alice", "q1")
        clock.now_ms = NEXT_MONDAY_MS + 60_000
        await flow.award("bob", "q1")
        await boards.write("trial", {"userId": "cid", "score": 61_000, "metadata": {"car": "red"}})
        expected = {
            ("global", "current"): [("alice", 100), ("bob", 100)],
            ("weekly", "current"): [("bob", 100)],
            ("weekly", "2026-W49"): [("alice", 100)],
            ("trial", "current"): [("cid", 61_000)],
        }
        private_redis.client().flushall()

        async def rebuilt(boards: Boards = boards, expected: dict[tuple[str, str], Any] = expected) -> None:
            for (board, period), top in expected.items():
                assert await boards.top(board, period=period) == top, (board, period)

        await eventually(rebuilt, 8.0)
        entry = (await boards.get("/api/v1/boards/trial/top"))["leaderboard"][0]
        assert entry["metadata"] == {"car": "red"}
        await client.close()
        db_path = db_path.with_name("second.db")


async def test_two_processes_agree_on_the_boundary(
    aiohttp_client: Any, db_path: Path, bearer: Any, redis_prefix: str, pg_schema: str
) -> None:
    storage = {"redis_url": REDIS_URL, "redis_prefix": redis_prefix, "database_url": schema_dsn(pg_schema)}
    config, clock = boards_config(db_path, storage), Clock(NEXT_MONDAY_MS - 1)
    first: AppClient = await aiohttp_client(app_with_clock(config, clock))
    second: AppClient = await aiohttp_client(app_with_clock(config, clock))
    await Flow(first, bearer).award("alice", "q1")  # 1 ms before the boundary, on one process
    clock.now_ms = NEXT_MONDAY_MS + 1
    await Flow(second, bearer).award("bob", "q1")  # 1 ms after, on the other
    for client in (first, second):
        boards = Boards(client, bearer)
        assert await boards.top("weekly") == [("bob", 100)]
        assert await boards.top("weekly", period="previous") == [("alice", 100)]
        periods = (await boards.get("/api/v1/boards/weekly/periods"))["periods"]
        assert [(p["id"], p["entries"]) for p in periods] == [("2026-W50", 1), ("2026-W49", 1)]
