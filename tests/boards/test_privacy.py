"""Personal data in every storage set-up: the export holds every row kept about the caller; an
erasure takes the user off every board (live viewers see them go), keeps their history under a
pseudonym, renames them in others' notices and in trusted servers' kept answers, and leaves no row
that holds their id or name."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from app.api.keys import CONFIG, OVERTAKES, STORE
from app.audit.commands import verify_command
from app.audit.sealer import Sealer
from app.auth import UserAuth

from ..conftest import Flow, envelope
from ..isolation import REDIS_URL
from ..live_client import WS, recv, recv_type, token_for
from .scene import ATTEST_KEY, AppClient, Boards

USER = "zelda-77"
NAME = USER.title()  # the name the tests' JWTs give her


def _as(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(user, name=user.title())}"}


async def _call(client: AppClient, method: str, path: str, headers: dict[str, str], status: int = 200) -> Any:
    resp = await client.request(method, path, headers=headers)
    body = await envelope(resp)
    assert resp.status == status, body
    return body["data"] if body["success"] else body["error"]


async def _scene(client: AppClient, flow: Flow, bearer: Any) -> None:
    """Zelda: two awards (global, weekly, daily), a trusted time on `trial` with metadata, an unused
    token, passed by carol on global (a notice for her) and passing bob on three boards (three
    notices naming her), and a game server's attestation of an action she has not completed."""
    boards = Boards(client, bearer)
    await flow.award("bob", "b1")
    await flow.award(USER, "z1")  # a tie with bob, reached later: behind him
    await flow.award(USER, "z2")  # 200: passes bob
    await flow.award("carol", "c1")  # 100: behind both
    await flow.award("carol", "c2", "DEFEAT_BOSS")  # 600 on global: passes zelda (and bob)
    await flow.token(USER, "z3")  # issued, never used
    await boards.write("trial", {"userId": USER, "score": 61234, "metadata": {"car": "Lotus"}}, key="lap-1")
    attested = await client.post(
        "/api/v1/actions/z9/attest", json={"userId": USER}, headers={"Authorization": f"Bearer {ATTEST_KEY}"}
    )
    assert attested.status == 200, await attested.text()
    await client.app[OVERTAKES].finished()


async def _rows(db_path: Path, storage: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    """Every row of every table of the database, with its table."""
    if dsn := storage.get("database_url"):
        conn = await asyncpg.connect(dsn)
        try:
            tables = [
                r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            ]
            return [(t, tuple(row)) for t in tables for row in await conn.fetch(f"SELECT * FROM {t}")]
        finally:
            await conn.close()
    with sqlite3.connect(db_path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return [(t, row) for t in tables for row in db.execute(f"SELECT * FROM {t}")]


def _naming(rows: list[tuple[str, tuple[Any, ...]]], *texts: str) -> list[tuple[str, tuple[Any, ...]]]:
    return [(t, row) for t, row in rows if any(text in str(value) for value in row for text in texts)]


async def test_the_export_holds_every_row_kept_about_the_caller(
    client: AppClient, flow: Flow, bearer: Any, db_path: Path, storage: dict[str, Any]
) -> None:
    await _scene(client, flow, bearer)
    data = await _call(client, "GET", "/api/v1/users/me/export", _as(USER))
    assert data["user"]["userId"] == USER and data["user"]["username"] == NAME
    assert sorted((e["board"], e["score"]) for e in data["entries"]) == [
        ("daily", 200),
        ("global", 200),
        ("trial", 61234),
        ("weekly", 200),
    ]
    assert [e["metadata"] for e in data["entries"] if e["board"] == "trial"] == [{"car": "Lotus"}]
    assert [(a["actionId"], a["newScore"]) for a in data["awards"]] == [("z1", 100), ("z2", 200)]
    assert len(data["history"]) == 7 and {h["service"] for h in data["history"]} == {None, "racer"}
    assert sorted((t["actionId"], t["usedAt"] is None) for t in data["tokens"]) == [
        ("z1", False),
        ("z2", False),
        ("z3", True),
    ]
    assert [(n["type"], n["data"]["by"]["userId"]) for n in data["notifications"]] == [("overtaken", "carol")]
    assert [(a["actionId"], a["service"]) for a in data["attestations"]] == [("z9", "attester")]
    # Every row naming the user is in the export (the notice naming her as the passer is bob's).
    rows = _naming(await _rows(db_path, storage), USER)
    by_table: dict[str, int] = {}
    for table, _ in rows:
        by_table[table] = by_table.get(table, 0) + 1
    assert by_table == {
        "users": 1,
        "board_entries": 4,
        "score_history": 2,
        "board_history": 7,
        "action_tokens": 3,
        "notices": 4,  # hers, and bob's three naming her
        "idempotency_keys": 1,  # the trusted write's kept answer
        "attestations": 1,
    }
    resp = await client.get("/api/v1/users/me/export")
    assert resp.status == 401
    assert (await _call(client, "GET", "/api/v1/users/me/export", _as("nobody"), 404))["code"] == "USER_NOT_FOUND"


async def test_an_erasure_leaves_no_row_with_the_users_id_or_name(
    client: AppClient, flow: Flow, bearer: Any, db_path: Path, storage: dict[str, Any]
) -> None:
    await _scene(client, flow, bearer)
    viewer = await client.ws_connect(WS)
    assert (await recv(viewer))["type"] == "connected"
    await viewer.send_json({"type": "subscribe", "channel": "leaderboard", "board": "weekly"})
    await recv_type(viewer, "leaderboard_update")
    sealer = Sealer(client.app[STORE])
    assert await sealer.catch_up() > 0  # her rows sealed: the audit chain holds her subject's key

    assert await _call(client, "DELETE", "/api/v1/users/me", _as(USER)) == {"erased": True}

    update = await recv_type(viewer, "leaderboard_update")  # live viewers see her go
    assert [e["userId"] for e in update["data"]["leaderboard"]] == ["bob", "carol"]
    for board in ("global", "weekly", "daily", "trial"):
        top = await _call(client, "GET", f"/api/v1/boards/{board}/top", {})
        assert USER not in [e["userId"] for e in top["leaderboard"]], board
    global_top = await _call(client, "GET", "/api/v1/boards/global/top", {})
    assert [e["userId"] for e in global_top["leaderboard"]] == ["carol", "bob"]
    for path in (f"/api/v1/users/{USER}/score", f"/api/v1/users/{USER}/boards", "/api/v1/users/me/export"):
        assert (await _call(client, "GET", path, _as(USER), 404))["code"] == "USER_NOT_FOUND", path
    assert (await _call(client, "DELETE", "/api/v1/users/me", _as(USER), 404))["code"] == "USER_NOT_FOUND"

    await sealer.catch_up()
    rows = await _rows(db_path, storage)
    assert _naming(rows, USER, NAME) == []
    assert [t for t, _ in rows if t == "audit_chain"] and [t for t, _ in rows if t == "audit_subjects"]
    # The audit chain still verifies: the pseudonym took over her subject's key.
    intact, line = await asyncio.to_thread(verify_command, client.app[CONFIG].settings)
    assert intact, line
    pseudonyms = {row[0] for table, row in rows if table == "users" and str(row[0]).startswith("erased-")}
    assert len(pseudonyms) == 1
    [pseudonym] = pseudonyms
    # The history stays, under the pseudonym; bob's notice names the pseudonym as who passed him.
    assert len([r for t, r in rows if t == "board_history" and pseudonym in r]) == 7
    told = (await _call(client, "GET", "/api/v1/users/me/notifications", _as("bob")))["notifications"]
    assert [n["data"]["by"] for n in told] == [{"userId": pseudonym, "username": pseudonym, "score": 200}] * 3 + [
        {"userId": "carol", "username": "Carol", "score": 600}
    ]
    if storage:  # the shared boards hold neither her id nor her name
        redis = aioredis.from_url(REDIS_URL)
        try:
            async for key in redis.scan_iter(match=f"{storage['redis_prefix']}:*"):
                kind = str(await redis.type(key))
                if "zset" in kind:
                    values = [str(m) for m in await redis.zrange(key, 0, -1)]
                elif "hash" in kind:
                    values = [str(x) for pair in (await redis.hgetall(key)).items() for x in pair]
                else:
                    continue
                assert not [v for v in values if USER in v or NAME in v], key
        finally:
            await redis.aclose()
    await viewer.close()


async def test_operators_erase_others(client: AppClient, flow: Flow, user_auth: UserAuth) -> None:
    await flow.award(USER, "z1")
    path = f"/api/v1/users/{USER}"
    admin = {"Authorization": f"Bearer {user_auth.issue('op', roles=('admin',))}"}
    assert (await _call(client, "DELETE", path, _as("bob"), 403))["code"] == "FORBIDDEN"
    assert (await _call(client, "DELETE", path, {}, 401))["code"] == "UNAUTHORIZED"
    assert (await _call(client, "DELETE", "/api/v1/users/nobody", admin, 404))["code"] == "USER_NOT_FOUND"
    for bad in ("a b", "x" * 101, "\u00e9", "a%00b", "a/b", "..", "%ff"):
        resp = await client.request("DELETE", f"/api/v1/users/{bad}", headers=admin)
        assert resp.status in (400, 404), (bad, resp.status)
        assert (await envelope(resp))["error"]["code"] in ("VALIDATION_ERROR", "NOT_FOUND"), bad
    assert await _call(client, "DELETE", path, admin) == {"erased": True}
    assert (await _call(client, "GET", f"{path}/score", admin, 404))["code"] == "USER_NOT_FOUND"
    # A user whose id is `me`: the operators' route erases them, not the operator asking.
    await flow.award("me", "m1")
    await flow.award("op", "o1")
    assert (await _call(client, "DELETE", "/api/v1/admin/users/me", _as("bob"), 403))["code"] == "FORBIDDEN"
    assert await _call(client, "DELETE", "/api/v1/admin/users/me", admin) == {"erased": True}
    assert (await _call(client, "GET", "/api/v1/users/me/score", admin, 404))["code"] == "USER_NOT_FOUND"
    assert (await _call(client, "GET", "/api/v1/users/op/score", admin))["score"] == 100


async def test_a_player_attested_before_they_ever_played_exports_and_is_erased(
    client: AppClient, db_path: Path, storage: dict[str, Any]
) -> None:
    newbie = "newbie-9"
    attested = await client.post(
        "/api/v1/actions/n1/attest", json={"userId": newbie}, headers={"Authorization": f"Bearer {ATTEST_KEY}"}
    )
    assert attested.status == 200, await attested.text()
    data = await _call(client, "GET", "/api/v1/users/me/export", _as(newbie))
    assert data["user"] is None and [a["actionId"] for a in data["attestations"]] == ["n1"]
    assert await _call(client, "DELETE", "/api/v1/users/me", _as(newbie)) == {"erased": True}
    assert _naming(await _rows(db_path, storage), newbie) == []
    assert (await _call(client, "GET", "/api/v1/users/me/export", _as(newbie), 404))["code"] == "USER_NOT_FOUND"
