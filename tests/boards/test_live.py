"""Live updates of many boards over a real WebSocket, in every storage set-up: subscriptions per
board, `board`/`period` in every message, the end of a period."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.api.keys import HUB, SCOREBOARD

from ..conftest import Flow
from ..live_client import WS, recv, recv_type, settled, subscribed, token_for
from .scene import (
    NEXT_MONDAY_MS,
    AppClient,
    Boards,
    Clock,
    HeldBack,
    app_with_clock,
    boards_config,
    no_period_end_while_held,
)


async def test_each_board_streams_its_own_top(flow: Flow, client: AppClient) -> None:
    weekly = await subscribed(client, board="weekly")
    trial = await subscribed(client, board="trial")
    await flow.award("alice", "q1")
    update = await recv_type(weekly, "leaderboard_update")
    assert update["data"]["board"] == "weekly" and update["data"]["period"] == "2026-W49"
    assert [(e["userId"], e["score"], e["change"]) for e in update["data"]["leaderboard"]] == [("alice", 100, "+100")]
    await Boards(client, flow.bearer).write("trial", {"userId": "bob", "score": 6100})
    update = await recv_type(trial, "leaderboard_update")
    assert update["data"]["board"] == "trial" and update["data"]["period"] == "all"
    assert [(e["userId"], e["score"]) for e in update["data"]["leaderboard"]] == [("bob", 6100)]
    await weekly.close()
    await trial.close()


async def test_personal_messages_name_their_board(flow: Flow, client: AppClient) -> None:
    ws = await client.ws_connect(f"{WS}?token={token_for('alice')}")
    assert (await recv(ws))["type"] == "connected"
    await flow.award("alice", "q1")
    boards = set()
    for _ in range(3):
        message = await recv_type(ws, "score_update")
        boards.add((message["data"]["board"], message["data"]["period"]))
        assert message["data"]["newScore"] == 100
    assert boards == {("global", "all"), ("weekly", "2026-W49"), ("daily", "2026-12-02")}
    await ws.close()


async def test_subscriptions_per_board_and_their_limit(client: AppClient) -> None:
    ws = await client.ws_connect(WS)
    await recv(ws)
    await ws.send_json({"type": "subscribe", "channel": "leaderboard", "board": "nope"})
    error = (await recv(ws))["error"]
    assert (error["code"], error["details"]) == ("BOARD_NOT_FOUND", {"channel": "leaderboard", "board": "nope"})
    await ws.send_json({"type": "subscribe", "channel": "leaderboard", "board": "Bad Id"})
    assert (await recv(ws))["error"]["code"] == "VALIDATION_ERROR"
    await ws.send_json({"type": "subscribe", "channel": "around"})  # anonymous: the default board's
    error = (await recv(ws))["error"]
    assert (error["code"], error["details"]) == ("UNAUTHORIZED", {"channel": "around", "board": "global"})
    await ws.send_json({"type": "subscribe", "channel": "notifications"})
    error = (await recv(ws))["error"]
    assert (error["code"], error["details"]) == ("UNAUTHORIZED", {"channel": "notifications"})
    boards = ["global", "weekly", "daily", "trial", "high", "latest"]
    for board in boards:
        await ws.send_json({"type": "subscribe", "channel": "leaderboard", "board": board})
        assert await recv(ws) == {"type": "subscribed", "channel": "leaderboard", "board": board}
        snapshot = await recv(ws)
        assert snapshot["type"] == "leaderboard_update" and snapshot["data"]["board"] == board
    assert client.app[HUB].subscriptions() == len(boards)
    await ws.send_json({"type": "unsubscribe", "channel": "leaderboard", "board": "trial"})
    assert await recv(ws) == {"type": "unsubscribed", "channel": "leaderboard", "board": "trial"}
    assert client.app[HUB].subscriptions() == len(boards) - 1
    await ws.close()
    await settled(client)
    assert client.app[HUB].subscriptions() == 0


async def test_at_most_ten_board_subscriptions(client: AppClient, user_auth: Any) -> None:
    admin = {"Authorization": f"Bearer {user_auth.issue('op', roles=('admin',))}"}
    for i in range(6):
        resp = await client.post("/api/v1/admin/boards", json={"id": f"extra-{i}"}, headers=admin)
        assert resp.status == 201
    listed = [b["id"] for b in (await (await client.get("/api/v1/boards")).json())["data"]["boards"]]
    assert len(listed) == 12
    ws = await client.ws_connect(WS)
    await recv(ws)
    for board in listed[:10]:
        await ws.send_json({"type": "subscribe", "channel": "leaderboard", "board": board})
        assert (await recv(ws))["type"] == "subscribed"
        assert (await recv(ws))["type"] == "leaderboard_update"
    await ws.send_json({"type": "subscribe", "channel": "leaderboard", "board": listed[10]})
    assert (await recv(ws))["error"]["code"] == "VALIDATION_ERROR"
    # Subscribing again to a board held is no new subscription.
    await ws.send_json({"type": "subscribe", "channel": "leaderboard", "board": listed[0]})
    assert (await recv(ws))["type"] == "subscribed"
    await ws.close()


async def test_period_end_sends_the_frozen_top_then_the_new_period(flow: Flow, client: AppClient, clock: Clock) -> None:
    clock.now_ms = NEXT_MONDAY_MS - 1000
    await flow.award("alice", "q1")
    await flow.award("bob", "b1", "WEEKLY_ONLY")
    ws = await subscribed(client, board="weekly")
    clock.now_ms = NEXT_MONDAY_MS
    client.app[HUB].resync()  # the boundary timer runs on the real clock: wake the waves now
    ended = await recv_type(ws, "period_ended")
    assert ended["data"]["board"] == "weekly" and ended["data"]["period"] == "2026-W49"
    assert [(e["userId"], e["score"]) for e in ended["data"]["leaderboard"]] == [("alice", 100), ("bob", 7)]
    fresh = await recv(ws)
    assert fresh["type"] == "leaderboard_update"
    assert fresh["data"]["period"] == "2026-W50" and fresh["data"]["leaderboard"] == []
    await flow.award("carol", "q1")
    update = await recv_type(ws, "leaderboard_update")
    assert update["data"]["period"] == "2026-W50"
    assert [(e["userId"], e["change"]) for e in update["data"]["leaderboard"]] == [("carol", "+100")]
    await ws.close()


async def test_one_award_on_three_boards_costs_three_waves_at_most(flow: Flow, client: AppClient) -> None:
    viewers = [await subscribed(client, board=board) for board in ("global", "weekly", "daily")]
    await settled(client)
    tally = client.app[HUB].tally
    before = tally.made
    await flow.award("alice", "q1")
    for viewer in viewers:
        assert (await recv_type(viewer, "leaderboard_update"))["data"]["leaderboard"][0]["userId"] == "alice"
    await settled(client)
    assert 1 <= tally.made - before <= 3
    for viewer in viewers:
        await viewer.close()


async def board_channel(client: AppClient, board: str) -> tuple[Any, dict[str, Any]]:
    """A connection subscribed to a board's leaderboard, and the snapshot it was sent first (its
    `seq` is where the subscription's count starts)."""
    await settled(client)
    ws = await client.ws_connect(WS)
    assert (await recv(ws))["type"] == "connected"
    await ws.send_json({"type": "subscribe", "channel": "leaderboard", "board": board})
    assert await recv(ws) == {"type": "subscribed", "channel": "leaderboard", "board": board}
    snapshot = await recv(ws)
    assert snapshot["type"] == "leaderboard_update", snapshot
    return ws, snapshot


async def test_the_period_end_alarm_alone_sends_the_frozen_top_then_the_new_period(
    flow: Flow, client: AppClient, clock: Clock
) -> None:
    clock.now_ms = NEXT_MONDAY_MS - 1000
    await flow.award("alice", "q1")
    await flow.award("bob", "b1", "WEEKLY_ONLY")
    await settled(client)
    # The board's broadcaster starts with this subscription and arms its alarm from this reading.
    clock.short_of_monday()
    ws, snapshot = await board_channel(client, "weekly")
    assert snapshot["data"]["period"] == "2026-W49" and len(snapshot["data"]["leaderboard"]) == 2
    await clock.reach_monday()
    # Nothing but the alarm wakes the board now: without it no message comes at all.
    ended = await recv(ws)
    assert ended["type"] == "period_ended", ended
    assert ended["data"]["board"] == "weekly" and ended["data"]["period"] == "2026-W49"
    assert [(e["rank"], e["userId"], e["score"]) for e in ended["data"]["leaderboard"]] == [
        (1, "alice", 100),
        (2, "bob", 7),
    ]
    assert ended["data"]["seq"] == snapshot["data"]["seq"] + 1
    fresh = await recv(ws)
    assert fresh["type"] == "leaderboard_update", fresh
    assert fresh["data"]["board"] == "weekly" and fresh["data"]["period"] == "2026-W50"
    assert fresh["data"]["leaderboard"] == []
    assert fresh["data"]["seq"] == ended["data"]["seq"] + 1
    await ws.close()


async def test_rank_change_names_its_board_and_comes_once_per_board_passed_on(flow: Flow, client: AppClient) -> None:
    await flow.award("bob", "q1")  # bob first on global, weekly and daily
    await flow.award("alice", "q1")  # alice second on each: the same score, reached later
    bob = await client.ws_connect(f"{WS}?token={token_for('bob')}")
    assert (await recv(bob))["type"] == "connected"
    # Alice passes bob on the weekly board alone.
    await Boards(client, flow.bearer).write("weekly", {"userId": "alice", "score": 50})
    assert (await recv_type(bob, "rank_change"))["data"] == {
        "board": "weekly",
        "period": "2026-W49",
        "userId": "bob",
        "previousRank": 1,
        "newRank": 2,
        "score": 100,
    }
    # Then on the default board alone (DEFEAT_BOSS awards there only).
    await flow.award("alice", "boss", "DEFEAT_BOSS")
    assert (await recv_type(bob, "rank_change"))["data"] == {
        "board": "global",
        "period": "all",
        "userId": "bob",
        "previousRank": 1,
        "newRank": 2,
        "score": 100,
    }
    # Bob kept first place on the daily board: no message names it, nor repeats another board.
    await settled(client)
    await client.app[HUB].finished()
    await bob.send_json({"type": "ping"})
    rest: list[dict[str, Any]] = []
    while (message := await recv(bob))["type"] != "pong":
        rest.append(message)
    assert [m for m in rest if m["type"] == "rank_change"] == []
    await bob.close()


async def ended_weekly_board(client: AppClient, clock: Clock) -> tuple[Any, dict[str, Any]]:
    """A subscriber of the weekly board carried across next Monday's boundary by the alarm; the
    `period_ended` it was sent (the new period's empty snapshot read after it)."""
    clock.short_of_monday()
    ws, _ = await board_channel(client, "weekly")
    await clock.reach_monday()
    ended = await recv(ws)
    assert ended["type"] == "period_ended", ended
    fresh = await recv(ws)
    assert fresh["data"]["period"] == "2026-W50" and fresh["data"]["leaderboard"] == []
    return ws, ended


def past_the_boundary(client: AppClient, clock: Clock, monkeypatch: pytest.MonkeyPatch, *, before_commit: bool) -> None:
    """From now on the clock jumps past next Monday while an award is in the store: before its
    transaction begins (it waited for it), or once it has committed (its transaction began before
    the boundary), so that what the award does after (placing, publishing) sees the new period."""
    store = client.app[SCOREBOARD].store
    award = store.award

    async def late(claim: Any) -> Any:
        if before_commit:
            clock.now_ms = max(clock.now_ms, NEXT_MONDAY_MS + 1000)
        try:
            return await award(claim)
        finally:
            clock.now_ms = max(clock.now_ms, NEXT_MONDAY_MS + 1000)

    monkeypatch.setattr(store, "award", late)


async def test_an_award_whose_transaction_began_before_the_boundary_stays_off_the_new_periods_live_board(
    flow: Flow, client: AppClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.now_ms = NEXT_MONDAY_MS - 1000
    await flow.award("alice", "q1")
    await settled(client)
    ws, _ = await ended_weekly_board(client, clock)
    clock.now_ms = NEXT_MONDAY_MS - 1
    past_the_boundary(client, clock, monkeypatch, before_commit=False)
    await flow.award("dave", "q1")
    boards = Boards(client, flow.bearer)
    # Its transaction ran in the week that ended, so it counts there (README, Periods).
    assert await boards.top("weekly", period="2026-W49") == [("alice", 100), ("dave", 100)]
    await flow.award("carol", "q1")
    update = await recv(ws)
    assert update["type"] == "leaderboard_update", update
    assert update["data"]["period"] == "2026-W50"
    assert [(e["userId"], e["score"], e["change"]) for e in update["data"]["leaderboard"]] == [("carol", 100, "+100")]
    assert await boards.top("weekly") == [("carol", 100)]
    again, snapshot = await board_channel(client, "weekly")
    assert snapshot["data"]["period"] == "2026-W50"
    assert [e["userId"] for e in snapshot["data"]["leaderboard"]] == ["carol"]
    await again.close()
    await ws.close()


async def test_an_award_whose_period_ended_while_it_waited_counts_in_the_new_one(
    flow: Flow, client: AppClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.now_ms = NEXT_MONDAY_MS - 1000
    await flow.award("alice", "q1")
    await settled(client)
    ws, ended = await ended_weekly_board(client, clock)
    frozen = [(e["userId"], e["score"]) for e in ended["data"]["leaderboard"]]
    assert frozen == [("alice", 100)]
    clock.now_ms = NEXT_MONDAY_MS - 1  # asked for in the last millisecond of the week
    past_the_boundary(client, clock, monkeypatch, before_commit=True)
    answer = await flow.award("dave", "q1")
    # The contract: an award counts in the period in which it commits, and an ended period's
    # standings are frozen. The store refused the week that had ended; the service stamped it again.
    assert {b["board"]: b["period"] for b in answer["boards"]}["weekly"] == "2026-W50"
    boards = Boards(client, flow.bearer)
    assert await boards.top("weekly", period="2026-W49") == frozen
    assert await boards.top("weekly") == [("dave", 100)]
    update = await recv(ws)
    assert update["data"]["period"] == "2026-W50" and update["data"]["leaderboard"][0]["userId"] == "dave"
    await ws.close()


async def test_a_clock_stepped_back_across_the_boundary_does_not_end_the_period_shown(
    flow: Flow, client: AppClient, clock: Clock
) -> None:
    clock.now_ms = NEXT_MONDAY_MS + 1000
    await flow.award("alice", "q1")
    ws, snapshot = await board_channel(client, "weekly")
    assert snapshot["data"]["period"] == "2026-W50"
    clock.now_ms = NEXT_MONDAY_MS - 1000  # stepped back (a time sync) into the week that ended
    # A new subscription reads the board again, and the clock it reads is behind the period shown.
    other, again = await board_channel(client, "weekly")
    assert again["data"]["period"] == "2026-W50"
    assert [e["userId"] for e in again["data"]["leaderboard"]] == ["alice"]
    clock.now_ms = NEXT_MONDAY_MS + 2000
    await flow.award("bob", "q1")
    # No `period_ended` of the week still running: the next message is its update.
    update = await recv(ws)
    assert update["type"] == "leaderboard_update", update
    assert update["data"]["period"] == "2026-W50"
    assert [e["userId"] for e in update["data"]["leaderboard"]] == ["alice", "bob"]
    await other.close()
    await ws.close()


WRITERS = {"award": "award", "trusted write": "write_score", "adjustment": "adjust"}


@pytest.mark.parametrize("writer", list(WRITERS))
async def test_the_frozen_top_waits_for_a_write_committed_in_the_period_and_still_being_placed(
    flow: Flow, client: AppClient, clock: Clock, monkeypatch: pytest.MonkeyPatch, operator: dict[str, str], writer: str
) -> None:
    clock.now_ms = NEXT_MONDAY_MS - 1000
    await flow.award("alice", "q1")
    await flow.award("dave", "boss", "DEFEAT_BOSS")  # known to the server, not on the weekly board
    await settled(client)
    clock.short_of_monday()
    ws, _ = await board_channel(client, "weekly")
    # Dave's write commits in the last moments of the week, then is slow to reach the rank index.
    held = HeldBack(monkeypatch, client.app[SCOREBOARD].store, WRITERS[writer])
    write: Any
    if writer == "award":
        write = flow.award("dave", "q1")
    elif writer == "trusted write":
        write = Boards(client, flow.bearer).write("weekly", {"userId": "dave", "score": 100})
    else:
        adjust = "/api/v1/admin/boards/weekly/scores/dave/adjust"
        write = client.post(adjust, json={"delta": 100, "reason": "lost reward"}, headers=operator)
    dave = asyncio.create_task(write)
    await held.committed(dave)
    await no_period_end_while_held(client, clock, ws)
    held.release()
    answer = await dave
    if writer == "adjustment":
        assert answer.status == 200, await answer.text()
    else:
        weekly = {b["board"]: b for b in answer["boards"]}["weekly"] if writer == "award" else answer
        assert weekly["period"] == "2026-W49"
    ended = await recv_type(ws, "period_ended")
    # The week's frozen top is the week's standings, as `period=` reads them: dave in it.
    frozen = [(e["userId"], e["score"]) for e in ended["data"]["leaderboard"]]
    assert frozen == [("alice", 100), ("dave", 100)]
    assert await Boards(client, flow.bearer).top("weekly", period="2026-W49") == frozen
    fresh = await recv(ws)
    assert fresh["data"]["period"] == "2026-W50" and fresh["data"]["leaderboard"] == []
    await ws.close()


@pytest.mark.parametrize("act", ["entries/dave/remove", "wipe"])
async def test_the_frozen_top_waits_for_an_operators_removal_committed_in_the_period(
    flow: Flow, client: AppClient, clock: Clock, monkeypatch: pytest.MonkeyPatch, operator: dict[str, str], act: str
) -> None:
    clock.now_ms = NEXT_MONDAY_MS - 1000
    await flow.award("alice", "q1")
    await flow.award("dave", "q1")
    await settled(client)
    clock.short_of_monday()
    ws, _ = await board_channel(client, "weekly")
    # The act commits in the last moments of the week, then is slow to take the entries off the index.
    held = HeldBack(monkeypatch, client.app[SCOREBOARD].store, "wipe" if act == "wipe" else "remove_entry")
    path = f"/api/v1/admin/boards/weekly/periods/current/{act}"
    removal = asyncio.create_task(client.post(path, json={"reason": "exploit"}, headers=operator))
    await held.committed(removal)
    await no_period_end_while_held(client, clock, ws)
    held.release()
    assert (await removal).status == 200
    ended = await recv_type(ws, "period_ended")
    frozen = [(e["userId"], e["score"]) for e in ended["data"]["leaderboard"]]
    assert frozen == ([] if act == "wipe" else [("alice", 100)])
    assert await Boards(client, flow.bearer).top("weekly", period="2026-W49") == frozen
    await ws.close()


async def test_the_frozen_top_waits_for_an_award_under_way_on_another_process(
    aiohttp_client: Any,
    db_path: Any,
    storage: dict[str, Any],
    flow: Flow,
    client: AppClient,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not storage:
        pytest.skip("one process: the embedded set-up has no other")
    other: AppClient = await aiohttp_client(app_with_clock(boards_config(db_path, storage), clock))
    clock.now_ms = NEXT_MONDAY_MS - 1000
    await flow.award("alice", "q1")
    await settled(client)
    clock.short_of_monday()
    ws, _ = await board_channel(client, "weekly")
    # Dave's award, on the other process, commits in the last moments of the week, then is slow
    # to reach the rank index.
    held = HeldBack(monkeypatch, other.app[SCOREBOARD].store, "award")
    dave = asyncio.create_task(Flow(other, flow.bearer).award("dave", "q1"))
    await held.committed(dave)
    await no_period_end_while_held(client, clock, ws)  # this process's board waits for the other's award
    held.release()
    assert {b["board"]: b["period"] for b in (await dave)["boards"]}["weekly"] == "2026-W49"
    ended = await recv_type(ws, "period_ended")
    frozen = [(e["userId"], e["score"]) for e in ended["data"]["leaderboard"]]
    assert frozen == [("alice", 100), ("dave", 100)]
    await ws.close()
