"""Shared fixtures: a per-test configuration, app, client and database snapshot."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from app import create_app
from app.auth import UserAuth
from app.config import Config, Secrets, parse_settings

JWT_SECRET = b"test-user-jwt-secret-0123456789abcdef"
ACTION_SECRET = b"test-action-secret-0123456789abcdef!!"

BASE_SETTINGS: dict[str, Any] = {
    "limits": {"updates_per_minute": 1000, "ip_requests_per_minute": 100000, "ws_connections_per_user": 5},
    "actions": {
        "COMPLETE_QUEST": {"score": 100},
        "DEFEAT_BOSS": {"score": 500},
        "SLOW_PUZZLE": {"score": 50, "min_seconds": 30},
    },
}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def make_config(db_path: Path, **sections: Any) -> Config:
    """A test configuration with its own SQLite file; keyword tables are merged over the base."""
    raw = _merge(BASE_SETTINGS, {"storage": {"sqlite_path": str(db_path)}, **sections})
    return Config(settings=parse_settings(raw), secrets=Secrets(jwt=JWT_SECRET, action=ACTION_SECRET), env="test")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "scoreboard.db"


@pytest.fixture
def config(db_path: Path) -> Config:
    return make_config(db_path)


@pytest.fixture
def user_auth() -> UserAuth:
    return UserAuth(JWT_SECRET)


@pytest.fixture
def bearer(user_auth: UserAuth) -> Callable[..., dict[str, str]]:
    def headers(user_id: str = "alice", name: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {user_auth.issue(user_id, name=name or user_id.title())}"}

    return headers


MakeClient = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def make_client(aiohttp_client: Any, db_path: Path) -> MakeClient:
    async def make(config: Config | None = None, **sections: Any) -> TestClient[web.Request, web.Application]:
        client: TestClient[web.Request, web.Application] = await aiohttp_client(
            create_app(config or make_config(db_path, **sections))
        )
        return client

    return make


@pytest.fixture
async def client(make_client: MakeClient, config: Config) -> TestClient[web.Request, web.Application]:
    return await make_client(config)


def snapshot(db_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read from the file: proves that a rejected request changed nothing."""
    with sqlite3.connect(db_path) as db:
        return {
            table: db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("users", "action_tokens", "score_history")
        }


async def envelope(resp: Any) -> dict[str, Any]:
    """Decode a response, asserting the contract's envelope shape."""
    body = await resp.read()
    assert resp.content_type == "application/json", body
    data: dict[str, Any] = msgspec.json.decode(body)
    if data["success"]:
        assert set(data) == {"success", "data"}
    else:
        assert set(data) == {"success", "error"}
        assert {"code", "message"} <= set(data["error"])
    return data


class Flow:
    """The REST flow as a player would drive it."""

    def __init__(self, client: TestClient[web.Request, web.Application], bearer: Callable[..., dict[str, str]]):
        self.client = client
        self.bearer = bearer

    async def token(self, user: str = "alice", action_id: str = "q1", action_type: str = "COMPLETE_QUEST") -> str:
        resp = await self.client.post(
            "/api/v1/actions/initialize",
            json={"actionType": action_type, "actionId": action_id},
            headers=self.bearer(user),
        )
        body = await envelope(resp)
        assert resp.status == 200, body
        token: str = body["data"]["actionToken"]
        return token

    async def submit(self, token: str, user: str = "alice", action_id: str = "q1", **extra: Any) -> Any:
        return await self.client.post(
            "/api/v1/scoreboard/update",
            json={"actionToken": token, "actionId": action_id, **extra},
            headers=self.bearer(user),
        )

    async def award(self, user: str = "alice", action_id: str = "q1", action_type: str = "COMPLETE_QUEST") -> Any:
        token = await self.token(user, action_id, action_type)
        resp = await self.submit(token, user, action_id)
        body = await envelope(resp)
        assert resp.status == 200, body
        return body["data"]


@pytest.fixture
def flow(client: TestClient[web.Request, web.Application], bearer: Callable[..., dict[str, str]]) -> Flow:
    return Flow(client, bearer)
