"""Boards survive what the one board survived: a restart across a period's end (in every storage
set-up), a Redis flush (every board and kept period comes back from the database)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.api.keys import OVERTAKES, STORE
from app.ranking.redis import RedisRanking
from app.records import BoardPeriod, OperatorAct

from ..conftest import Flow, envelope
from ..contracts import eventually
from ..isolation import schema_dsn
from ..real_servers import RedisServer
from .scene import (
    BOARDS,
    LIMITED_KEY,
    NEXT_MONDAY_MS,
    AppClient,
    Boards,
    Clock,
    app_with_clock,
    boards_config,
)

HOUR_MS = 3_600_000


def listing(seen: dict[str, Any]) -> dict[str, list[tuple[str, int]]]:
    """Each board's readable periods and their sizes, from a `state`."""
    return {board: [(p["id"], p["entries"]) for p in seen[board]["periods"]] for board in BOARDS}


async def changes(client: AppClient, bearer: Any, user: str) -> list[tuple[str, str, int]]:
    """(board, period, value) of each change the system of record keeps of the user's entries, all
    of them by the user's one award."""
    resp = await client.get("/api/v1/users/me/export", headers=bearer(user))
    body = await envelope(resp)
    assert resp.status == 200, body
    awards, history = body["data"]["awards"], body["data"]["history"]
    assert [(a["actionId"], a["scoreChange"]) for a in awards] == [("q1", 100)], user
    assert {h["awardId"] for h in history} == {awards[0]["id"]}, user
    return sorted((h["board"], h["period"], h["value"]) for h in history)


async def every_board_written(flow: Flow, boards: Boards, clock: Clock) -> None:
    """Entries on every board of scene.py, in every period a board keeps readable: weekly's two
    finished weeks and daily's finished day too, the best of two writes on high and the last on latest."""
    # Sunday 2026-11-29, 00:00 UTC: week 2026-W48 (kept, two weeks back); its Berlin day is long gone.
    clock.now_ms = NEXT_MONDAY_MS - 8 * 24 * HOUR_MS
    await flow.award("erin", "q1")
    clock.now_ms = NEXT_MONDAY_MS - 2 * HOUR_MS  # Sunday 23:00 in Berlin: the finished day 2026-12-06
    await flow.award("carol", "q1")
    clock.now_ms = NEXT_MONDAY_MS - 60_000  # already Monday in Berlin, still 2026-W49 in UTC
    await flow.award("alice", "q1")
    clock.now_ms = NEXT_MONDAY_MS + 60_000
    await flow.award("bob", "q1")
    await flow.award("bob", "boss", "DEFEAT_BOSS")
    await flow.award("dan", "w1", "WEEKLY_ONLY")
    await boards.write("trial", {"userId": "cid", "score": 61_000, "metadata": {"car": "red"}})
    await boards.write("trial", {"userId": "dan", "score": 60_000, "metadata": {"car": "blue"}}, key="k2")
    await boards.write("high", {"userId": "carol", "score": 950}, key="k3")
    await boards.write("high", {"userId": "bob", "score": 900, "metadata": {"try": 1}}, key="k4")
    await boards.write("high", {"userId": "bob", "score": 800, "metadata": {"try": 2}}, key="k5")
    await boards.write("latest", {"userId": "alice", "score": 5}, key="k6", service_key=LIMITED_KEY)
    await boards.write("latest", {"userId": "alice", "score": 3}, key="k7", service_key=LIMITED_KEY)


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
    await client.app[STORE].retire_board("trial", OperatorAct(operator="ops-1", reason="test"))
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
        clock = Clock()
        client: AppClient = await aiohttp_client(app_with_clock(boards_config(db_path, storage), clock))
        boards = Boards(client, bearer)
        await every_board_written(Flow(client, bearer), boards, clock)
        before = await boards.state()
        # Equal states prove nothing unless every board and kept period has entries to lose.
        assert listing(before) == {
            "global": [("all", 4)],
            "weekly": [("2026-W50", 2), ("2026-W49", 2), ("2026-W48", 1)],
            "daily": [("2026-12-07", 2), ("2026-12-06", 1)],
            "trial": [("all", 2)],
            "high": [("all", 2)],
            "latest": [("all", 1)],
        }
        expected = {
            ("global", "current"): [("bob", 600), ("erin", 100), ("carol", 100), ("alice", 100)],
            ("weekly", "current"): [("bob", 100), ("dan", 7)],
            ("weekly", "2026-W49"): [("carol", 100), ("alice", 100)],
            ("weekly", "2026-W48"): [("erin", 100)],
            ("daily", "current"): [("alice", 100), ("bob", 100)],
            ("daily", "previous"): [("carol", 100)],
            ("trial", "current"): [("dan", 60_000), ("cid", 61_000)],
            ("high", "current"): [("carol", 950), ("bob", 900)],
            ("latest", "current"): [("alice", 3)],
        }
        for (board, period), top in expected.items():
            assert await boards.top(board, period=period) == top, (board, period)
        private_redis.client().flushall()

        async def rebuilt(boards: Boards = boards, before: dict[str, Any] = before) -> None:
            assert await boards.state() == before

        await eventually(rebuilt, 8.0)
        for (board, period), top in expected.items():
            assert await boards.top(board, period=period) == top, (board, period)
        trial = (await boards.get("/api/v1/boards/trial/top"))["leaderboard"]
        assert {e["userId"]: e["metadata"] for e in trial} == {"dan": {"car": "blue"}, "cid": {"car": "red"}}
        await client.close()
        db_path = db_path.with_name("second.db")


@pytest.mark.parametrize("storage", ["redis", "postgres"], indirect=True)
async def test_two_processes_agree_on_the_boundary(
    aiohttp_client: Any, db_path: Path, bearer: Any, storage: dict[str, Any]
) -> None:
    # One configuration for both, as `--workers` shares it: the same SQLite file or schema, the same Redis prefix.
    config, clock = boards_config(db_path, storage), Clock(NEXT_MONDAY_MS - 1)
    first: AppClient = await aiohttp_client(app_with_clock(config, clock))
    second: AppClient = await aiohttp_client(app_with_clock(config, clock))
    await Flow(first, bearer).award("alice", "q1")  # 1 ms before the boundary, on one process
    clock.now_ms = NEXT_MONDAY_MS + 1
    await Flow(second, bearer).award("bob", "q1")  # 1 ms after, on the other
    seen: list[dict[str, Any]] = []
    for client in (first, second):
        boards = Boards(client, bearer)
        assert await boards.top("weekly") == [("bob", 100)]
        assert await boards.top("weekly", period="previous") == [("alice", 100)]
        periods = (await boards.get("/api/v1/boards/weekly/periods"))["periods"]
        assert [(p["id"], p["entries"]) for p in periods] == [("2026-W50", 1), ("2026-W49", 1)]
        finished = await boards.get("/api/v1/boards/weekly/top", period="previous")
        assert finished["period"] == "2026-W49"
        assert await boards.top("global") == [("alice", 100), ("bob", 100)]
        assert await boards.top("daily") == [("alice", 100), ("bob", 100)]  # both at 01:00 in Berlin
        assert await changes(client, bearer, "alice") == [
            ("daily", "2026-12-07", 100),
            ("global", "all", 100),
            ("weekly", "2026-W49", 100),
        ]
        assert await changes(client, bearer, "bob") == [
            ("daily", "2026-12-07", 100),
            ("global", "all", 100),
            ("weekly", "2026-W50", 100),
        ]
        seen.append(await boards.state())
    assert seen[0] == seen[1]
