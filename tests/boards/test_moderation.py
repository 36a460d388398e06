"""Moderation in every storage set-up: a disqualified user is on no board and every write of theirs
is refused (DISQUALIFIED, their token still usable) until reinstated, which restores every board and
kept period exactly; an award racing a disqualification never lands; adjustments, removals and
wipes keep the history's sum equal to the score, the ranks and the live boards exact; every act is
recorded; refusals change nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from app.api.keys import SCOREBOARD
from app.ranking import Placement

from ..conftest import Flow, Snapshot, envelope
from ..contracts import eventually
from ..isolation import REDIS_URL
from ..live_client import WS, recv, recv_type
from .scene import ADMIN, CHEAT, NEXT_MONDAY_MS, AppClient, Boards, Clock, app_with_clock, boards_config


async def call(client: AppClient, method: str, path: str, headers: dict[str, str], **kw: Any) -> tuple[int, Any]:
    """A request; its status and its data or error."""
    resp = await client.request(method, path, headers=headers, **kw)
    body = await envelope(resp)
    return resp.status, body["data"] if body["success"] else body["error"]


async def act(client: AppClient, operator: dict[str, str], path: str, **body: Any) -> Any:
    """An operator's act that succeeds; its data."""
    status, data = await call(client, "POST", f"{ADMIN}/{path}", operator, json={"reason": "checked", **body})
    assert status == 200, data
    return data


async def rows(db_path: Path, storage: dict[str, Any], query: str) -> list[tuple[Any, ...]]:
    """The rows of one query of the system of record."""
    if dsn := storage.get("database_url"):
        conn = await asyncpg.connect(dsn)
        try:
            return [tuple(r) for r in await conn.fetch(query)]
        finally:
            await conn.close()
    with sqlite3.connect(db_path) as db:
        return db.execute(query).fetchall()


async def sums_match(db_path: Path, storage: dict[str, Any]) -> None:
    """On every incr board, each entry's score is the sum of its history, and an entry removed sums to 0."""
    sums = await rows(
        db_path,
        storage,
        "SELECT h.board, h.period, h.user_id, SUM(h.value), MAX(e.score) FROM board_history h "
        "LEFT JOIN board_entries e ON e.board = h.board AND e.period = h.period AND e.user_id = h.user_id "
        "WHERE h.board IN ('global', 'weekly', 'daily') GROUP BY h.board, h.period, h.user_id",
    )
    assert sums
    for board, period, user, total, score in sums:
        assert total == (score or 0), (board, period, user)


async def scene(flow: Flow, boards: Boards, clock: Clock) -> None:
    """Awards on global, weekly and daily, trusted writes on trial, high and latest; mallory is on
    every board, between others, and ties with alice on trial (reached later: behind her)."""
    clock.now_ms = NEXT_MONDAY_MS - 3 * 86_400_000  # Friday of week 2026-W49
    for user, quests in (("alice", 3), (CHEAT, 2), ("bob", 1), ("carol", 2)):
        for i in range(quests):
            await flow.award(user, f"{user}-q{i}")
    await flow.award(CHEAT, "boss", "DEFEAT_BOSS")  # global only: 700 there
    for key, (user, board, score) in enumerate(
        (
            ("alice", "trial", 61_000),
            (CHEAT, "trial", 61_000),
            ("bob", "trial", 58_000),
            (CHEAT, "high", 900),
            ("carol", "high", 950),
            (CHEAT, "latest", 5),
        )
    ):
        await boards.write(board, {"userId": user, "score": score, "metadata": {"n": key}}, key=f"w{key}")


async def test_disqualify_then_reinstate_restores_every_board_and_period(
    client: AppClient, flow: Flow, boards: Boards, clock: Clock, operator: dict[str, str]
) -> None:
    await scene(flow, boards, clock)
    before = await boards.state()
    viewer = await client.ws_connect(WS)
    assert (await recv(viewer))["type"] == "connected"
    await viewer.send_json({"type": "subscribe", "channel": "leaderboard", "board": "global"})
    await recv_type(viewer, "leaderboard_update")
    answer = await act(client, operator, f"users/{CHEAT}/disqualify", reason="Speed hack")
    update = await recv_type(viewer, "leaderboard_update")  # live viewers see her vanish
    assert [e["userId"] for e in update["data"]["leaderboard"]] == ["alice", "carol", "bob"]
    assert (answer["userId"], answer["disqualified"], answer["act"]["action"]) == (CHEAT, True, "disqualify")
    assert answer["act"]["operator"] == "ops-1" and answer["act"]["reason"] == "Speed hack"
    gone = await boards.state()
    for key, value in gone.items():
        assert CHEAT not in str(value), key
    assert [e["userId"] for e in gone["trial/all"]["leaderboard"]] == ["bob", "alice"]

    # The week and the day roll over while she is out; others score in the new periods.
    clock.now_ms = NEXT_MONDAY_MS + 3_600_000
    await flow.award("bob", "bob-next", "WEEKLY_ONLY")  # the new week only
    while_out = await boards.state()
    assert CHEAT not in str(while_out)
    await act(client, operator, f"users/{CHEAT}/reinstate")
    after = await boards.state()
    # Every period she was in is as it was; the new ones as they were without her (she scored none).
    for key, value in before.items():
        if "/" in key and key in after:
            assert after[key] == value, key
    assert after["weekly/2026-W50"] == while_out["weekly/2026-W50"]
    assert after["weekly/2026-W49"] == before["weekly/2026-W49"]
    assert after["daily"] == while_out["daily"] and after["global/all"]["total"] == before["global/all"]["total"]
    update = await recv_type(viewer, "leaderboard_update")  # and come back
    assert update["data"]["leaderboard"][0]["userId"] == CHEAT
    await viewer.close()


async def test_a_disqualified_users_writes_are_refused_and_their_token_stays_usable(
    client: AppClient, flow: Flow, boards: Boards, operator: dict[str, str], bearer: Any, snapshot: Snapshot
) -> None:
    await flow.award(CHEAT, "q0")
    token = await flow.token(CHEAT, "q1")
    await act(client, operator, f"users/{CHEAT}/disqualify")
    before = await snapshot()
    resp = await client.post(
        "/api/v1/actions/initialize", json={"actionType": "COMPLETE_QUEST", "actionId": "q2"}, headers=bearer(CHEAT)
    )
    assert (resp.status, (await envelope(resp))["error"]["code"]) == (403, "DISQUALIFIED")
    resp = await flow.submit(token, CHEAT, "q1")
    assert (resp.status, (await envelope(resp))["error"]["code"]) == (403, "DISQUALIFIED")
    refused = await boards.write("trial", {"userId": CHEAT, "score": 50_000}, key="lap", status=403)
    assert refused["code"] == "DISQUALIFIED"
    assert await snapshot() == before  # nothing changed: no token, no award, no key kept
    status, score = await call(client, "GET", f"/api/v1/users/{CHEAT}/score", bearer("bob"))
    assert (status, score["score"], score["rank"]) == (200, 0, None)

    await act(client, operator, f"users/{CHEAT}/reinstate")
    resp = await flow.submit(token, CHEAT, "q1")  # the refused token, still usable
    assert resp.status == 200, await resp.text()
    assert (await envelope(resp))["data"]["newScore"] == 200
    assert (await boards.write("trial", {"userId": CHEAT, "score": 50_000}, key="lap"))["rank"] == 1
    assert await boards.top("global") == [(CHEAT, 200)]


async def test_awards_racing_a_disqualification_never_land_on_a_board(
    client: AppClient, flow: Flow, boards: Boards, operator: dict[str, str], db_path: Path, storage: dict[str, Any]
) -> None:
    await flow.award("alice", "a0")
    tokens = [await flow.token(CHEAT, f"r{i}") for i in range(24)]
    first = [asyncio.create_task(flow.submit(t, CHEAT, f"r{i}")) for i, t in enumerate(tokens[:12])]
    disqualify = asyncio.create_task(
        call(client, "POST", f"{ADMIN}/users/{CHEAT}/disqualify", operator, json={"reason": "bot"})
    )
    rest = [asyncio.create_task(flow.submit(t, CHEAT, f"r{i}")) for i, t in enumerate(tokens[12:], start=12)]
    answers = await asyncio.gather(*first, *rest)
    assert (await disqualify)[0] == 200
    outcomes = [(resp.status, await envelope(resp)) for resp in answers]
    refused = [i for i, (status, _) in enumerate(outcomes) if status == 403]
    for status, body in outcomes:
        assert status in (200, 403), body
        if status == 403:
            assert body["error"]["code"] == "DISQUALIFIED"
    # On no board, whatever committed when.
    for board in ("global", "weekly", "daily"):
        assert CHEAT not in [u for u, _ in await boards.top(board)]
    committed = await rows(db_path, storage, f"SELECT COUNT(*) FROM score_history WHERE user_id = '{CHEAT}'")
    await act(client, operator, f"users/{CHEAT}/reinstate")
    assert dict(await boards.top("global")).get(CHEAT, 0) == 100 * committed[0][0]
    # Those refused before committing kept their tokens.
    for i in refused:
        body = outcomes[i][1]
        if not body["error"].get("details", {}).get("awarded"):
            resp = await flow.submit(tokens[i], CHEAT, f"r{i}")
            assert resp.status == 200, await resp.text()
    assert dict(await boards.top("global"))[CHEAT] == 100 * 24
    await sums_match(db_path, storage)


async def test_an_award_committed_before_a_disqualification_and_placed_after_lands_nowhere(
    client: AppClient, flow: Flow, boards: Boards, operator: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await flow.award("alice", "a0")
    token = await flow.token(CHEAT, "late")
    ranking = client.app[SCOREBOARD].placer.ranking
    put_all = ranking.put_all
    committed, go = asyncio.Event(), asyncio.Event()

    async def late_put(placements: list[Placement]) -> Any:
        if placements[0][1].user_id == CHEAT and not go.is_set():
            committed.set()  # the award's transaction is over: placing it waits for the disqualification
            await go.wait()
        return await put_all(placements)

    monkeypatch.setattr(ranking, "put_all", late_put)
    award = asyncio.create_task(flow.submit(token, CHEAT, "late"))
    await committed.wait()
    await act(client, operator, f"users/{CHEAT}/disqualify")
    go.set()
    resp = await award
    error = (await envelope(resp))["error"]
    assert (resp.status, error["code"], error["details"]["awarded"]) == (403, "DISQUALIFIED", True)
    for board in ("global", "weekly", "daily"):
        assert CHEAT not in [u for u, _ in await boards.top(board)], board
    await act(client, operator, f"users/{CHEAT}/reinstate")
    for board in ("global", "weekly", "daily"):
        assert dict(await boards.top(board))[CHEAT] == 100, board


@pytest.mark.parametrize("removal", ["entries/bob/remove", "wipe"])
async def test_an_award_committed_before_a_removal_and_placed_after_stays_off_that_period(
    client: AppClient,
    flow: Flow,
    boards: Boards,
    operator: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    db_path: Path,
    storage: dict[str, Any],
    removal: str,
) -> None:
    await flow.award("alice", "a0")
    await flow.award("bob", "b0")
    token = await flow.token("bob", "late")
    viewer = await client.ws_connect(WS)
    assert (await recv(viewer))["type"] == "connected"
    await viewer.send_json({"type": "subscribe", "channel": "leaderboard", "board": "weekly"})
    await recv_type(viewer, "leaderboard_update")
    ranking = client.app[SCOREBOARD].placer.ranking
    put_all = ranking.put_all
    committed, go = asyncio.Event(), asyncio.Event()

    async def late_put(placements: list[Placement]) -> Any:
        if placements[0][1].user_id == "bob" and not go.is_set():
            committed.set()  # the award's transaction is over: placing it waits for the removal
            await go.wait()
        return await put_all(placements)

    monkeypatch.setattr(ranking, "put_all", late_put)
    award = asyncio.create_task(flow.submit(token, "bob", "late"))
    await committed.wait()
    await act(client, operator, f"boards/weekly/periods/current/{removal}")
    update = await recv_type(viewer, "leaderboard_update")
    left = [] if removal == "wipe" else [("alice", 100)]
    assert [(e["userId"], e["score"]) for e in update["data"]["leaderboard"]] == left
    go.set()
    resp = await award
    # Committed before the removal: the answer is the award's (where it stood, then removed) ...
    data = (await envelope(resp))["data"]
    assert resp.status == 200, data
    landed = {b["board"]: (b["newScore"], b["rank"]) for b in data["boards"]}
    assert landed == {"global": (200, 1), "weekly": (200, 1), "daily": (200, 1)}
    # ... but the removal stands: the late placement did not put bob back, nor told the viewers.
    assert await boards.top("weekly") == left
    assert await boards.top("global") == [("bob", 200), ("alice", 100)]
    with pytest.raises(asyncio.TimeoutError):
        await viewer.receive_json(timeout=0.3)
    await sums_match(db_path, storage)
    await flow.award("bob", "after")  # a write after the removal is placed
    assert await boards.top("weekly") == ([("alice", 100), ("bob", 100)] if left else [("bob", 100)])
    await viewer.close()


async def test_a_rebuild_from_the_database_keeps_a_disqualified_user_off(
    aiohttp_client: Any,
    client: AppClient,
    flow: Flow,
    boards: Boards,
    clock: Clock,
    operator: dict[str, str],
    bearer: Any,
    db_path: Path,
    storage: dict[str, Any],
) -> None:
    await scene(flow, boards, clock)
    await act(client, operator, f"users/{CHEAT}/disqualify")
    expected = await boards.state()
    if storage:  # Redis loses everything: the keeper refills it from the database
        redis = aioredis.from_url(REDIS_URL)
        try:
            keys = [key async for key in redis.scan_iter(match=f"{storage['redis_prefix']}:*")]
            await redis.delete(*keys)
        finally:
            await redis.aclose()

        async def refilled() -> None:
            assert await boards.state() == expected

        await eventually(refilled, 10)
    await client.close()
    # A restart reads the boards from the database again.
    again: AppClient = await aiohttp_client(app_with_clock(boards_config(db_path, storage), clock))
    assert await Boards(again, bearer).state() == expected
    await act(again, operator, f"users/{CHEAT}/reinstate")
    assert (await Boards(again, bearer).top("global"))[0] == (CHEAT, 700)


async def test_adjust_corrects_the_score_ranks_and_live_board_and_the_history_sums(
    client: AppClient, flow: Flow, boards: Boards, operator: dict[str, str], db_path: Path, storage: dict[str, Any]
) -> None:
    for user, quests in (("alice", 1), ("bob", 2), ("carol", 3)):
        for i in range(quests):
            await flow.award(user, f"{user}-{i}")
    viewer = await client.ws_connect(WS)
    assert (await recv(viewer))["type"] == "connected"
    await viewer.send_json({"type": "subscribe", "channel": "leaderboard", "board": "global"})
    await recv_type(viewer, "leaderboard_update")

    up = await act(client, operator, "boards/global/scores/alice/adjust", delta=250, reason="lost reward")
    assert (up["previousScore"], up["newScore"], up["rank"], up["period"]) == (100, 350, 1, "all")
    assert (up["act"]["action"], up["act"]["amount"], up["act"]["board"]) == ("adjust", 250, "global")
    update = await recv_type(viewer, "leaderboard_update")
    assert [(e["userId"], e["score"]) for e in update["data"]["leaderboard"]] == [
        ("alice", 350),
        ("carol", 300),
        ("bob", 200),
    ]
    down = await act(client, operator, "boards/global/scores/carol/adjust", delta=-400)
    assert (down["newScore"], down["rank"]) == (-100, 3)
    assert await boards.top("global") == [("alice", 350), ("bob", 200), ("carol", -100)]
    # A user without an entry: an incr board starts one; a best board has none to adjust.
    await boards.write("trial", {"userId": "dave", "score": 70_000}, key="d")  # dave is known, on trial alone
    fresh = await act(client, operator, "boards/weekly/scores/dave/adjust", delta=30)
    assert (fresh["previousScore"], fresh["newScore"]) == (None, 30)
    status, error = await call(
        client, "POST", f"{ADMIN}/boards/trial/scores/alice/adjust", operator, json={"delta": 5, "reason": "x"}
    )
    assert (status, error["code"]) == (404, "NOT_FOUND")
    await flow.award("alice", "after")  # awards go on from the corrected score
    assert dict(await boards.top("global"))["alice"] == 450
    await sums_match(db_path, storage)
    corrections = await rows(db_path, storage, "SELECT COUNT(*) FROM board_history WHERE moderation_id IS NOT NULL")
    assert corrections == [(3,)]
    await viewer.close()


async def test_remove_an_entry_and_wipe_a_period(
    client: AppClient,
    flow: Flow,
    boards: Boards,
    operator: dict[str, str],
    db_path: Path,
    storage: dict[str, Any],
) -> None:
    for user, quests in (("alice", 2), ("bob", 1), ("carol", 3)):
        for i in range(quests):
            await flow.award(user, f"{user}-{i}")
    viewer = await client.ws_connect(WS)
    assert (await recv(viewer))["type"] == "connected"
    await viewer.send_json({"type": "subscribe", "channel": "leaderboard", "board": "weekly"})
    await recv_type(viewer, "leaderboard_update")
    history_before = (await rows(db_path, storage, "SELECT COUNT(*) FROM board_history"))[0][0]

    removed = await act(client, operator, "boards/weekly/periods/current/entries/alice/remove", reason="exploit")
    assert (removed["removedScore"], removed["period"], removed["act"]["details"]["score"]) == (200, "2026-W49", 200)
    update = await recv_type(viewer, "leaderboard_update")  # live viewers see her go
    assert [e["userId"] for e in update["data"]["leaderboard"]] == ["carol", "bob"]
    assert await boards.top("weekly") == [("carol", 300), ("bob", 100)]
    assert dict(await boards.top("global"))["alice"] == 200  # other boards keep her
    status, error = await call(
        client, "POST", f"{ADMIN}/boards/weekly/periods/current/entries/alice/remove", operator, json={"reason": "x"}
    )
    assert (status, error["code"]) == (404, "NOT_FOUND")
    await flow.award("alice", "again")  # she may score there again, from nothing
    assert dict(await boards.top("weekly"))["alice"] == 100

    wiped = await act(client, operator, "boards/daily/periods/current/wipe", reason="broken build")
    assert wiped["removed"] == 3 and wiped["act"]["amount"] == 3
    assert sorted((e["userId"], e["score"]) for e in wiped["act"]["details"]["removed"]) == [
        ("alice", 300),
        ("bob", 100),
        ("carol", 300),
    ]
    assert await boards.top("daily") == []
    periods = await boards.get("/api/v1/boards/daily/periods")
    assert periods["periods"][0]["entries"] == 0
    # History rows are never deleted: the corrections are added (one for alice, three for the wipe).
    history_after = (await rows(db_path, storage, "SELECT COUNT(*) FROM board_history"))[0][0]
    assert history_after == history_before + 3 + 1 + 3  # alice's new award on three boards
    await sums_match(db_path, storage)
    acts = await rows(db_path, storage, "SELECT action, operator, reason, board, period FROM moderation ORDER BY id")
    assert [a[0] for a in acts] == ["remove", "wipe"] and {a[1] for a in acts} == {"ops-1"}
    await viewer.close()


async def test_a_users_history_shows_their_changes_and_the_acts_on_them(
    client: AppClient, flow: Flow, boards: Boards, operator: dict[str, str], bearer: Any
) -> None:
    await flow.award("alice", "q1")
    await boards.write("trial", {"userId": "alice", "score": 60_000}, key="t1")
    await act(client, operator, "boards/global/scores/alice/adjust", delta=-40, reason="refund")
    # Any script and emoji sequences (their zero-width joiners) are reasons as good as ASCII.
    await act(client, operator, "users/alice/disqualify", reason="بوت 👨‍💻 confirmé")
    status, page = await call(client, "GET", f"{ADMIN}/users/alice/history", operator, params={"limit": "3"})
    assert status == 200, page
    assert (page["disqualified"], page["username"]) == (True, "Alice") and page["disqualifiedAt"]
    assert [(h["kind"], h["board"]) for h in page["history"]] == [
        ("correction", "global"),
        ("trusted", "trial"),
        ("award", "daily"),
    ]
    assert page["history"][0]["actId"] == page["acts"][1]["id"] and page["history"][2]["actionId"] == "q1"
    assert [a["action"] for a in page["acts"]] == ["disqualify", "adjust"]
    assert page["acts"][0]["reason"] == "بوت 👨‍💻 confirmé"
    status, rest = await call(
        client, "GET", f"{ADMIN}/users/alice/history", operator, params={"after": str(page["nextAfter"])}
    )
    assert [(h["kind"], h["board"]) for h in rest["history"]] == [("award", "weekly"), ("award", "global")]
    assert rest["nextAfter"] is None
    # The export holds the acts on her too.
    status, export = await call(client, "GET", "/api/v1/users/me/export", bearer("alice"))
    assert [a["action"] for a in export["acts"]] == ["adjust", "disqualify"]


async def test_an_erasure_pseudonymises_the_acts_on_the_user(
    client: AppClient, flow: Flow, operator: dict[str, str], db_path: Path, storage: dict[str, Any]
) -> None:
    for user in (CHEAT, "bob"):
        await flow.award(user, "q1")
    await act(client, operator, f"users/{CHEAT}/disqualify")
    await act(client, operator, "boards/global/periods/current/wipe")
    status, _ = await call(client, "DELETE", f"/api/v1/users/{CHEAT}", operator)
    assert status == 200
    kept = await rows(db_path, storage, "SELECT user_id, details FROM moderation ORDER BY id")
    assert len(kept) == 2 and CHEAT not in str(kept)
    if storage:  # the shared ranking forgot her as excluded too
        redis = aioredis.from_url(REDIS_URL)
        try:
            assert not await redis.sismember(f"{storage['redis_prefix']}:excluded", CHEAT)
        finally:
            await redis.aclose()


async def test_an_act_ignores_fields_its_body_does_not_name(
    flow: Flow, client: AppClient, operator: dict[str, str]
) -> None:
    # The contract: unknown body fields are ignored, on operator routes as on every other.
    await flow.award(CHEAT, "q1")
    assert (await act(client, operator, f"users/{CHEAT}/disqualify", extra=1, Reason="no"))["disqualified"] is True
