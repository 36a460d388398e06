"""Many processes, one board: two servers share Redis and a database; `--workers` shares a port."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from app.auth import UserAuth
from app.errors import CLOSE_TOO_MANY

from .conftest import ACTION_SECRET, JWT_SECRET
from .isolation import REDIS_URL, need_server, schema_dsn
from .real_servers import ServerProcess, run_py

CONFIG = """
[storage]
redis_prefix = "{prefix}"
[limits]
updates_per_minute = 1000
ip_requests_per_minute = 100000
ws_connections_per_user = 2
[actions.COMPLETE_QUEST]
score = 100
"""


def _env(tmp_path: Path, prefix: str) -> dict[str, str]:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(prefix=prefix))
    return {
        "SCOREBOARD_CONFIG": str(config),
        "SCOREBOARD_REDIS_URL": REDIS_URL,
        "SCOREBOARD_SQLITE_PATH": str(tmp_path / "shared.db"),
        "SCOREBOARD_JWT_SECRET": JWT_SECRET.decode(),
        "SCOREBOARD_ACTION_SECRET": ACTION_SECRET.decode(),
    }


@pytest.fixture(params=["sqlite", "postgres"])
def two_servers(
    request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    env = _env(tmp_path, redis_prefix)
    if request.param == "postgres":
        env["SCOREBOARD_DATABASE_URL"] = schema_dsn(request.getfixturevalue("pg_schema"))
    a = run_py(env).start()
    b = run_py(env).start()
    yield a, b
    a.stop()
    b.stop()


def _auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {UserAuth(JWT_SECRET).issue(user, name=user.title())}"}


async def _award(http: aiohttp.ClientSession, url: str, user: str, action: str) -> dict[str, Any]:
    async with http.post(
        f"{url}/api/v1/actions/initialize",
        json={"actionType": "COMPLETE_QUEST", "actionId": action},
        headers=_auth(user),
    ) as resp:
        token = (await resp.json())["data"]["actionToken"]
    async with http.post(
        f"{url}/api/v1/scoreboard/update", json={"actionToken": token, "actionId": action}, headers=_auth(user)
    ) as resp:
        assert resp.status == 200
        data: dict[str, Any] = (await resp.json())["data"]
        return data


async def _next(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = await ws.receive_json(timeout=3)
        if message["type"] == kind:
            return message


async def test_award_on_one_process_reaches_clients_of_both(two_servers: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = two_servers
    async with aiohttp.ClientSession() as http:
        viewer_a = await http.ws_connect(f"{a.url.replace('http', 'ws')}/ws/scoreboard")
        viewer_b = await http.ws_connect(f"{b.url.replace('http', 'ws')}/ws/scoreboard")
        alice_a = await http.ws_connect(
            f"{a.url.replace('http', 'ws')}/ws/scoreboard?token={_auth('alice')['Authorization'][7:]}"
        )
        for ws in (viewer_a, viewer_b):
            await ws.send_json({"type": "subscribe", "channel": "leaderboard"})
            await _next(ws, "leaderboard_update")  # the snapshot

        await _award(http, b.url, "alice", "q1")  # made on B
        for ws in (viewer_a, viewer_b):
            update = await _next(ws, "leaderboard_update")
            assert [(e["userId"], e["score"], e["change"]) for e in update["data"]["leaderboard"]] == [
                ("alice", 100, "+100")
            ]
        assert (await _next(alice_a, "score_update"))["data"]["newScore"] == 100  # alice's socket lives on A

        async with http.get(f"{a.url}/api/v1/scoreboard/top") as resp:
            assert [e["userId"] for e in (await resp.json())["data"]["leaderboard"]] == ["alice"]

        # The per-user WebSocket limit (2 here) counts across both processes.
        second = await http.ws_connect(
            f"{b.url.replace('http', 'ws')}/ws/scoreboard?token={_auth('alice')['Authorization'][7:]}"
        )
        assert (await second.receive_json(timeout=3))["type"] == "connected"
        third = await http.ws_connect(
            f"{a.url.replace('http', 'ws')}/ws/scoreboard?token={_auth('alice')['Authorization'][7:]}"
        )
        msg = await third.receive(timeout=3)
        assert msg.type == aiohttp.WSMsgType.CLOSE and third.close_code == CLOSE_TOO_MANY
        for ws in (viewer_a, viewer_b, alice_a, second):
            await ws.close()


async def test_read_cache_is_dropped_by_an_award_on_the_other_process(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = two_servers
    async with aiohttp.ClientSession() as http:
        viewer_a = await http.ws_connect(f"{a.url.replace('http', 'ws')}/ws/scoreboard")
        await viewer_a.send_json({"type": "subscribe", "channel": "leaderboard"})
        await _next(viewer_a, "leaderboard_update")
        await _award(http, a.url, "bob", "q1")
        await _next(viewer_a, "leaderboard_update")
        for _ in range(2):  # the second answer comes from A's copy
            async with http.get(f"{a.url}/api/v1/scoreboard/top") as resp:
                assert [e["userId"] for e in (await resp.json())["data"]["leaderboard"]] == ["bob"]

        await _award(http, b.url, "alice", "q2")  # B's award reaches A on the channel
        await _award(http, b.url, "alice", "q3")
        while [e["userId"] for e in (await _next(viewer_a, "leaderboard_update"))["data"]["leaderboard"]] != [
            "alice",
            "bob",
        ]:
            pass
        async with http.get(f"{a.url}/api/v1/scoreboard/top") as resp:
            top = (await resp.json())["data"]["leaderboard"]
        assert [(e["userId"], e["score"]) for e in top] == [("alice", 200), ("bob", 100)]
        await viewer_a.close()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split()]


async def test_workers_share_one_port(tmp_path: Path, redis_prefix: str) -> None:
    server = run_py(_env(tmp_path, redis_prefix), "--workers", "2").start()
    try:
        assert server.proc is not None
        deadline = time.monotonic() + 10
        while len(_children(server.proc.pid)) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        workers = _children(server.proc.pid)
        assert len(workers) >= 2
        async with aiohttp.ClientSession() as http:
            results = [await _award(http, server.url, f"p{i}", "q1") for i in range(6)]
            assert all(r["newScore"] == 100 for r in results)
            async with http.get(f"{server.url}/api/v1/scoreboard/top") as resp:
                assert len((await resp.json())["data"]["leaderboard"]) == 6

        os.kill(workers[0], signal.SIGKILL)  # a worker dies: the supervisor replaces it
        await asyncio.sleep(2.5)
        assert len(_children(server.proc.pid)) >= 2
    finally:
        server.stop()
    assert server.proc is not None and server.proc.returncode == 0


def test_workers_need_redis(tmp_path: Path) -> None:
    need_server("Redis", REDIS_URL, 6379)
    env = _env(tmp_path, "x")
    env["SCOREBOARD_REDIS_URL"] = ""
    result = subprocess.run(
        [*run_py(env).command, "--workers", "2"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "SCOREBOARD_REDIS_URL" in result.stderr
