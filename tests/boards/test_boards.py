"""Many boards over HTTP, in every storage set-up: the catalog, awards on several boards at once,
periods that reset, and the reads of any board period. Trusted servers' writes: test_trusted.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from app.boards.catalog import Catalog
from app.ranking.memory import MemoryRanking
from app.records import BoardPeriod, Standing
from app.settings import BoardSettings

from ..conftest import Flow, envelope
from .scene import (
    NEXT_MONDAY_MS,
    WEDNESDAY_MS,
    AppClient,
    Boards,
    Clock,
)


@pytest.fixture
def boards(client: AppClient, bearer: Callable[..., dict[str, str]]) -> Boards:
    """The board routes against `client`."""
    return Boards(client, bearer)


async def test_boards_are_listed_with_their_current_period(boards: Boards) -> None:
    data = await boards.get("/api/v1/boards")
    listed = {b["id"]: b for b in data["boards"]}
    assert data["boards"][0]["id"] == "global"  # the default first
    assert set(listed) == {"global", "weekly", "daily", "trial", "high", "latest"}
    assert listed["global"]["period"] == {"id": "all", "startsAt": None, "endsAt": None}
    assert listed["weekly"]["period"] == {
        "id": "2026-W49",
        "startsAt": "2026-11-30T00:00:00.000Z",
        "endsAt": "2026-12-07T00:00:00.000Z",
    }
    # Local midnight in Berlin (UTC+1 in December).
    assert listed["daily"]["period"]["id"] == "2026-12-02"
    assert listed["daily"]["period"]["startsAt"] == "2026-12-01T23:00:00.000Z"
    assert listed["trial"]["order"] == "asc" and listed["trial"]["operator"] == "best"
    assert listed["trial"]["format"] == "duration_ms" and listed["trial"]["title"] == "Time trial"
    assert listed["high"]["title"] == "high"  # the id when no title is given
    one = await boards.get("/api/v1/boards/weekly")
    assert one["entries"] == 0 and one["id"] == "weekly"
    missing = await boards.get("/api/v1/boards/nope", status=404)
    assert missing["code"] == "BOARD_NOT_FOUND"
    bad = await boards.get("/api/v1/boards/Not-A-Board", status=400)
    assert bad["code"] == "VALIDATION_ERROR"


async def test_an_action_awards_on_each_of_its_boards_once(flow: Flow, boards: Boards, client: AppClient) -> None:
    first = await flow.award("alice", "q1")
    assert (first["previousScore"], first["newScore"], first["rank"]) == (0, 100, 1)
    assert [(b["board"], b["period"], b["previousScore"], b["newScore"], b["rank"]) for b in first["boards"]] == [
        ("global", "all", 0, 100, 1),
        ("weekly", "2026-W49", 0, 100, 1),
        ("daily", "2026-12-02", 0, 100, 1),
    ]
    await flow.award("alice", "q2")
    await flow.award("bob", "b1", "DEFEAT_BOSS")  # the default board only
    await flow.award("carol", "w1", "WEEKLY_ONLY")
    assert await boards.top("global") == [("bob", 500), ("alice", 200)]
    assert await boards.top("weekly") == [("alice", 200), ("carol", 7)]
    assert await boards.top("daily") == [("alice", 200)]
    # The routes of before are the default board's.
    legacy = (await envelope(await client.get("/api/v1/scoreboard/top")))["data"]["leaderboard"]
    assert [(e["userId"], e["score"]) for e in legacy] == [("bob", 500), ("alice", 200)]
    assert set(legacy[0]) == {"rank", "userId", "username", "score", "lastUpdated"}
    weekly_only = await flow.award("dave", "w1", "WEEKLY_ONLY")
    # An action not on the default board: the top level describes its first board.
    assert (weekly_only["newScore"], weekly_only["rank"]) == (7, 3)
    assert [e["userId"] for e in weekly_only["leaderboard"]] == ["alice", "carol", "dave"]


async def test_one_token_awards_once_on_every_board_under_concurrency(flow: Flow, boards: Boards) -> None:
    token = await flow.token("alice", "race")
    answers = await asyncio.gather(*(flow.submit(token, "alice", "race") for _ in range(100)))
    statuses = sorted(r.status for r in answers)
    assert statuses.count(200) == 1 and set(statuses) <= {200, 409}
    for board in ("global", "weekly", "daily"):
        assert await boards.top(board) == [("alice", 100)]


async def test_rejected_award_changes_no_board(flow: Flow, boards: Boards) -> None:
    token = await flow.token("alice", "q1")
    resp = await flow.submit(token, "alice", "other-id")
    assert resp.status == 400
    for board in ("global", "weekly", "daily"):
        assert await boards.top(board) == []


async def test_awards_land_in_the_period_current_at_commit(flow: Flow, boards: Boards, clock: Clock) -> None:
    clock.now_ms = NEXT_MONDAY_MS - 1
    before = await flow.award("alice", "q1")
    clock.now_ms = NEXT_MONDAY_MS
    after = await flow.award("bob", "q1")
    assert [b["period"] for b in before["boards"] if b["board"] == "weekly"] == ["2026-W49"]
    assert [b["period"] for b in after["boards"] if b["board"] == "weekly"] == ["2026-W50"]
    assert await boards.top("weekly") == [("bob", 100)]
    assert await boards.top("weekly", period="previous") == [("alice", 100)]
    assert await boards.top("weekly", period="2026-W49") == [("alice", 100)]
    assert await boards.top("global") == [("alice", 100), ("bob", 100)]
    periods = (await boards.get("/api/v1/boards/weekly/periods"))["periods"]
    assert [(p["id"], p["entries"]) for p in periods] == [("2026-W50", 1), ("2026-W49", 1)]
    # keep_periods = 2: in W51, W49 is still readable; in W52 it is gone.
    clock.now_ms = NEXT_MONDAY_MS + 7 * 86_400_000
    assert await boards.top("weekly", period="2026-W49") == [("alice", 100)]
    assert await boards.top("weekly") == []
    clock.now_ms = NEXT_MONDAY_MS + 14 * 86_400_000
    gone = await boards.get("/api/v1/boards/weekly/top", status=404, period="2026-W49")
    assert gone["code"] == "PERIOD_NOT_FOUND"
    for bad in ("2026-W54", "2026-w49", "yesterday", "2026-W49\n", "\uff12\uff10\uff12\uff16-W49"):
        error = await boards.get("/api/v1/boards/weekly/top", status=404, period=bad)
        assert error["code"] == "PERIOD_NOT_FOUND", bad
    assert (await boards.get("/api/v1/boards/global/top", status=404, period="previous"))["code"] == "PERIOD_NOT_FOUND"


async def test_ranges_around_lookup_and_total(flow: Flow, boards: Boards) -> None:
    for i in range(12):
        await boards.write("high", {"userId": f"u{i:02d}", "score": 100 - i}, key=f"k{i}")
    ranks = await boards.get("/api/v1/boards/high/ranks", from_=3, limit=4)
    assert ranks["total"] == 12
    assert [(e["rank"], e["userId"]) for e in ranks["leaderboard"]] == [(3, "u02"), (4, "u03"), (5, "u04"), (6, "u05")]
    past = await boards.get("/api/v1/boards/high/ranks", from_=12, limit=5)
    assert [e["rank"] for e in past["leaderboard"]] == [12]
    beyond = await boards.get("/api/v1/boards/high/ranks", from_=50)
    assert beyond["leaderboard"] == [] and beyond["total"] == 12
    # The contract bounds R below only: far beyond any board is an empty page, up to 2^53.
    for far in (2**31 + 1, 2**53):
        far_beyond = await boards.get("/api/v1/boards/high/ranks", from_=far, limit=100)
        assert far_beyond["leaderboard"] == [] and far_beyond["total"] == 12, far
    for bad in ({"from": 0}, {"limit": 0}, {"limit": 101}, {"from": "x"}, {"from": "1e3"}, {"from": 2**53 + 1}):
        resp = await boards.client.get("/api/v1/boards/high/ranks", params=bad)
        assert resp.status == 400, bad
    top_edge = await boards.get("/api/v1/boards/high/around/u00", radius=2)
    assert top_edge["rank"] == 1 and [e["rank"] for e in top_edge["entries"]] == [1, 2, 3]
    bottom_edge = await boards.get("/api/v1/boards/high/around/u11", radius=3)
    assert bottom_edge["rank"] == 12 and [e["rank"] for e in bottom_edge["entries"]] == [9, 10, 11, 12]
    middle = await boards.get("/api/v1/boards/high/around/u05")
    assert [e["rank"] for e in middle["entries"]] == list(range(1, 12))  # radius 5 by default
    alone = await boards.get("/api/v1/boards/high/around/u05", radius=0)
    assert [e["userId"] for e in alone["entries"]] == ["u05"]
    stranger = await boards.get("/api/v1/boards/high/around/nobody")
    assert stranger["rank"] is None and stranger["entries"] == []
    assert (await boards.client.get("/api/v1/boards/high/around/u01", params={"radius": "26"})).status == 400
    friends = await boards.lookup("high", {"userIds": ["u07", "nobody", "u01", "u07", "ghost"]})
    assert [(e["rank"], e["userId"]) for e in friends["entries"]] == [(2, "u01"), (8, "u07")]
    lookups: list[dict[str, Any]] = [
        {"userIds": []},
        {"userIds": ["x"] * 101},
        {"userIds": ["bad id"]},
        {"userIds": "u01"},
        {},
    ]
    for bad in lookups:
        error = await boards.lookup("high", bad, status=400)
        assert error["code"] == "VALIDATION_ERROR", bad


async def test_around_and_lookup_read_the_period_they_are_asked_for(flow: Flow, boards: Boards, clock: Clock) -> None:
    # Alice is second in both weeks, beside other people: only the neighbours tell which week answered.
    await flow.award("bob", "q1")
    await flow.award("bob", "q2")
    await flow.award("alice", "q1")
    await flow.award("carol", "w1", "WEEKLY_ONLY")
    clock.now_ms = NEXT_MONDAY_MS
    await flow.award("dave", "q1")
    await flow.award("alice", "w1", "WEEKLY_ONLY")
    finished = [(1, "bob", 200), (2, "alice", 100), (3, "carol", 7)]
    current = [(1, "dave", 100), (2, "alice", 7)]
    friends = {"userIds": ["carol", "alice", "dave", "bob"]}

    def ranked(entries: list[dict[str, Any]]) -> list[tuple[int, str, int]]:
        return [(e["rank"], e["userId"], e["score"]) for e in entries]

    for period, expected in (("previous", finished), ("2026-W49", finished), ("current", current), (None, current)):
        chosen: dict[str, Any] = {} if period is None else {"period": period}
        around = await boards.get("/api/v1/boards/weekly/around/alice", radius=1, **chosen)
        assert (around["rank"], ranked(around["entries"])) == (2, expected), period
        found = await boards.lookup("weekly", {**friends, **chosen})
        assert ranked(found["entries"]) == expected, period
    # Bob is on last week's board only.
    assert (await boards.get("/api/v1/boards/weekly/around/bob"))["rank"] is None
    assert (await boards.get("/api/v1/boards/weekly/around/bob", period="previous"))["rank"] == 1
    # keep_periods = 2: W48 is still kept (empty), W47 no longer; W51 has not begun.
    assert (await boards.get("/api/v1/boards/weekly/around/alice", period="2026-W48"))["entries"] == []
    for unkept in ("2026-W47", "2026-W51", "2026-12-07", "yesterday"):
        error = await boards.get("/api/v1/boards/weekly/around/alice", status=404, period=unkept)
        assert error["code"] == "PERIOD_NOT_FOUND", unkept
        error = await boards.lookup("weekly", {**friends, "period": unkept}, status=404)
        assert error["code"] == "PERIOD_NOT_FOUND", unkept
    no_previous = await boards.lookup("global", {**friends, "period": "previous"}, status=404)
    assert no_previous["code"] == "PERIOD_NOT_FOUND"
    for malformed in ("", "x" * 33):
        error = await boards.get("/api/v1/boards/weekly/around/alice", status=400, period=malformed)
        assert error["code"] == "VALIDATION_ERROR", malformed
    for bad in ("", "x" * 33, 49, ["2026-W49"]):
        error = await boards.lookup("weekly", {**friends, "period": bad}, status=400)
        assert error["code"] == "VALIDATION_ERROR", bad


async def test_a_users_standing_on_every_board(flow: Flow, boards: Boards, client: AppClient, bearer: Any) -> None:
    await flow.award("alice", "q1")
    await boards.write("trial", {"userId": "alice", "score": 1234}, key="t")
    resp = await client.get("/api/v1/users/alice/boards", headers=bearer("bob"))
    data = (await envelope(resp))["data"]
    assert resp.headers["Cache-Control"] == "private, no-store"
    assert [(b["board"], b["period"], b["score"], b["rank"]) for b in data["boards"]] == [
        ("global", "all", 100, 1),
        ("weekly", "2026-W49", 100, 1),
        ("daily", "2026-12-02", 100, 1),
        ("trial", "all", 1234, 1),
    ]
    assert (await client.get("/api/v1/users/alice/boards")).status == 401
    resp = await client.get("/api/v1/users/nobody/boards", headers=bearer("bob"))
    assert resp.status == 404 and (await envelope(resp))["error"]["code"] == "USER_NOT_FOUND"
    await flow.token("quiet", "q1")  # known, on no board
    resp = await client.get("/api/v1/users/quiet/boards", headers=bearer("bob"))
    assert (await envelope(resp))["data"]["boards"] == []


async def test_board_top_is_cacheable(flow: Flow, client: AppClient) -> None:
    await flow.award("alice", "q1")
    resp = await client.get("/api/v1/boards/weekly/top")
    etag = resp.headers["ETag"]
    again = await client.get("/api/v1/boards/weekly/top", headers={"If-None-Match": etag})
    assert again.status == 304
    await flow.award("bob", "q1")
    changed = await client.get("/api/v1/boards/weekly/top", headers={"If-None-Match": etag})
    assert changed.status == 200


async def test_memory_forgets_periods_no_longer_readable() -> None:
    catalog = Catalog("global", {"global": BoardSettings(), "weekly": BoardSettings(reset="weekly", keep_periods=1)})
    ranking = MemoryRanking()
    weekly = catalog.get("weekly")
    w49 = weekly.current(WEDNESDAY_MS)
    w50 = weekly.current(NEXT_MONDAY_MS)
    w51 = weekly.current(NEXT_MONDAY_MS + 7 * 86_400_000)
    standing = Standing(user_id="a", username="A", score=1, seq=1, updated_ms=1)
    for period in (w49, w50, w51):
        await ranking.put(weekly.where(period), standing)
    await ranking.put(catalog.get("global").where(w49), standing)  # a board no longer in the catalog's shape
    assert ranking.keep_only(catalog.shelves(NEXT_MONDAY_MS + 7 * 86_400_000)) == 2
    assert set(ranking.indexes) == {weekly.where(w50), weekly.where(w51)}
    await ranking.release()  # the forgotten indexes' memory, a chunk per loop turn
    assert ranking._forgotten == []


async def test_a_forgotten_index_is_freed_a_chunk_per_loop_turn() -> None:
    ranking = MemoryRanking()
    where = BoardPeriod(board="weekly", period="2026-W49")
    await ranking.load(
        where, [Standing(user_id=f"u{i}", username="U", score=i, seq=i + 1, updated_ms=1) for i in range(12_000)], None
    )
    index = ranking.indexes[where]
    assert ranking.keep_only(set()) == 1 and ranking.indexes == {}
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    counting = asyncio.create_task(count_turns())
    await asyncio.sleep(0)
    await ranking.release()
    counting.cancel()
    assert len(index) == 0 and ranking._forgotten == []
    assert turns >= 12  # 12,000 entries, 1,000 per turn: other work ran in between


async def test_a_daily_board_follows_its_zone_across_daylight_saving(flow: Flow, boards: Boards, clock: Clock) -> None:
    # Berlin, 29 March 2026: clocks go from 02:00 to 03:00, the day is 23 hours long.
    clock.now_ms = int(datetime(2026, 3, 28, 23, 30, tzinfo=UTC).timestamp() * 1000)  # 00:30 local
    daily = {b["id"]: b for b in (await boards.get("/api/v1/boards"))["boards"]}["daily"]["period"]
    assert daily == {"id": "2026-03-29", "startsAt": "2026-03-28T23:00:00.000Z", "endsAt": "2026-03-29T22:00:00.000Z"}
    await flow.award("alice", "q1")
    clock.now_ms = int(datetime(2026, 3, 29, 21, 59, 59, 999_000, tzinfo=UTC).timestamp() * 1000)  # 23:59:59.999
    await flow.award("bob", "q1")
    clock.now_ms += 1  # local midnight: the next day
    await flow.award("cid", "q1")
    assert await boards.top("daily", period="2026-03-29") == [("alice", 100), ("bob", 100)]
    assert await boards.top("daily") == [("cid", 100)]

    # 25 October 2026: clocks go back from 03:00 to 02:00, the day is 25 hours long.
    def october(day: int, hour: int, minute: int = 0) -> int:
        return int(datetime(2026, 10, day, hour, minute, tzinfo=UTC).timestamp() * 1000)

    async def daily_period_of_award(user: str, now_ms: int) -> str:
        clock.now_ms = now_ms
        answer = await flow.award(user, "q1")
        return str(next(b["period"] for b in answer["boards"] if b["board"] == "daily"))

    assert await daily_period_of_award("dan", october(24, 22) - 1) == "2026-10-24"  # 23:59:59.999 the day before
    assert await daily_period_of_award("eve", october(24, 22)) == "2026-10-25"  # 00:00 CEST
    assert await daily_period_of_award("fay", october(25, 0, 30)) == "2026-10-25"  # 02:30 CEST, the first pass
    assert await daily_period_of_award("gus", october(25, 1, 30)) == "2026-10-25"  # 02:30 CET, the extra hour
    daily = {b["id"]: b for b in (await boards.get("/api/v1/boards"))["boards"]}["daily"]["period"]
    assert daily == {"id": "2026-10-25", "startsAt": "2026-10-24T22:00:00.000Z", "endsAt": "2026-10-25T23:00:00.000Z"}
    # 24 hours after its start (22:00 UTC) the day still has an hour to go.
    assert await daily_period_of_award("hal", october(25, 23) - 1) == "2026-10-25"  # 23:59:59.999 CET
    assert await daily_period_of_award("ida", october(25, 23)) == "2026-10-26"  # 00:00 CET
    assert await boards.top("daily", period="2026-10-25") == [("eve", 100), ("fay", 100), ("gus", 100), ("hal", 100)]
    assert await boards.top("daily") == [("ida", 100)]
