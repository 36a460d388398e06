"""Durability: scores and ranks survive a restart and a `kill -9` right after the 200."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from app.auth import UserAuth

from .conftest import ACTION_SECRET, JWT_SECRET, Flow, MakeClient, envelope
from .real_servers import run_py


async def _board(client: TestClient[web.Request, web.Application]) -> list[tuple[int, str, int]]:
    data = (await envelope(await client.get("/api/v1/scoreboard/top?limit=100")))["data"]
    return [(e["rank"], e["userId"], e["score"]) for e in data["leaderboard"]]


async def test_restart_keeps_scores_and_ranks(make_client: MakeClient, bearer: Any, config: Any) -> None:
    client = await make_client(config)
    flow = Flow(client, bearer)
    await flow.award("alice", "q1")
    await flow.award("bob", "q1", "DEFEAT_BOSS")
    await flow.award("carol", "q1")
    token = await flow.token("alice", "q2")
    before = await _board(client)
    await client.close()

    client = await make_client(config)
    assert await _board(client) == before == [(1, "bob", 500), (2, "alice", 100), (3, "carol", 100)]
    flow = Flow(client, bearer)
    assert (await flow.submit(token, action_id="q2")).status == 200  # a token issued before the restart
    assert (await flow.submit(token, action_id="q2")).status == 409
    assert (await _board(client))[:2] == [(1, "bob", 500), (2, "alice", 200)]


def _env(db: Path) -> dict[str, str]:
    return {
        "SCOREBOARD_SQLITE_PATH": str(db),
        "SCOREBOARD_JWT_SECRET": JWT_SECRET.decode(),
        "SCOREBOARD_ACTION_SECRET": ACTION_SECRET.decode(),
        "SCOREBOARD_ENV": "test",
    }


def test_kill_9_after_200_keeps_the_award(tmp_path: Path) -> None:
    db = tmp_path / "scoreboard.db"
    auth = {"Authorization": "Bearer " + UserAuth(JWT_SECRET).issue("alice", name="Alice")}
    server = run_py(_env(db)).start()
    try:
        status, body = server.request(
            "POST", "/api/v1/actions/initialize", {"actionType": "COMPLETE_QUEST", "actionId": "q1"}, auth
        )
        assert status == 200, body
        token = body["data"]["actionToken"]
        status, body = server.request(
            "POST", "/api/v1/scoreboard/update", {"actionToken": token, "actionId": "q1"}, auth
        )
        assert status == 200 and body["data"]["newScore"] == 100
    finally:
        server.kill()

    with run_py(_env(db)) as again:
        status, body = again.request("GET", "/api/v1/users/alice/score", headers=auth)
        assert status == 200 and body["data"]["score"] == 100 and body["data"]["rank"] == 1
        status, body = again.request(
            "POST", "/api/v1/scoreboard/update", {"actionToken": token, "actionId": "q1"}, auth
        )
        assert status == 409 and body["error"]["code"] == "TOKEN_ALREADY_USED"
