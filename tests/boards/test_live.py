"""Live updates of many boards over a real WebSocket, in every storage set-up: subscriptions per
board, `board`/`period` in every message, the end of a period."""

from __future__ import annotations

from typing import Any

from app.api.keys import HUB

from ..conftest import Flow
from ..live_client import WS, recv, recv_type, settled, subscribed, token_for
from .scene import NEXT_MONDAY_MS, AppClient, Boards, Clock


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
    assert (await recv(ws))["error"]["code"] == "BOARD_NOT_FOUND"
    await ws.send_json({"type": "subscribe", "channel": "leaderboard", "board": "Bad Id"})
    assert (await recv(ws))["error"]["code"] == "VALIDATION_ERROR"
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
