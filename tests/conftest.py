"""Shared fixtures: a per-test configuration, app, client and database snapshot."""

from __future__ import annotations

import os
import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient

from app import create_app
from app.auth import UserAuth
from app.config import Config, Secrets, parse_settings

JWT_SECRET = b"test-user-jwt-secret-0123456789abcdef"
ACTION_SECRET = b"test-action-secret-0123456789abcdef!!"

BASE_SETTINGS: dict[str, Any] = {
    "limits": {
        "updates_per_minute": 1000,
        "initializes_per_minute": 1000,
        "tokens_per_user": 1000,
        "ip_requests_per_minute": 100000,
        "ws_connections_per_user": 5,
    },
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


REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/1")
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["embedded", "redis", "postgres"]


def make_config(db_path: Path, storage: dict[str, Any] | None = None, **sections: Any) -> Config:
    """A test configuration with its own SQLite file; keyword tables are merged over the base."""
    raw = _merge(BASE_SETTINGS, {"storage": {"sqlite_path": str(db_path), **(storage or {})}, **sections})
    return Config(settings=parse_settings(raw), secrets=Secrets(jwt=JWT_SECRET, action=ACTION_SECRET), env="test")


def reachable(url: str, default_port: int) -> bool:
    """Whether a server answers on the URL's host and port."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def need_server(name: str, url: str, port: int) -> None:
    """Skip with one line when a server is absent; under CI=true an absent server is a failure."""
    if reachable(url, port):
        return
    message = f"{name} is not reachable at {url}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: tests that need it must run)")
    pytest.skip(f"{message}: start it to run these tests")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "scoreboard.db"


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own in the test Redis database; its keys are deleted after."""
    need_server("Redis", REDIS_URL, 6379)
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A PostgreSQL schema of this test's own; dropped after."""
    need_server("PostgreSQL", POSTGRES_URL, 5432)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield schema
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await admin.close()


def schema_dsn(schema: str) -> str:
    return f"{POSTGRES_URL}?options=-c%20search_path%3D{schema}"


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The storage settings of one set-up: embedded; SQLite + Redis; PostgreSQL + Redis."""
    if request.param == "embedded":
        return {}
    settings: dict[str, Any] = {"redis_url": REDIS_URL, "redis_prefix": request.getfixturevalue("redis_prefix")}
    if request.param == "postgres":
        settings["database_url"] = schema_dsn(request.getfixturevalue("pg_schema"))
    return settings


@pytest.fixture
def config(db_path: Path, storage: dict[str, Any]) -> Config:
    return make_config(db_path, storage)


Snapshot = Callable[[], Awaitable[dict[str, list[tuple[Any, ...]]]]]
TABLES = ("users", "action_tokens", "score_history")


@pytest.fixture
def snapshot(db_path: Path, storage: dict[str, Any]) -> Snapshot:
    """Every row of every table, read from the system of record: proves a refusal changed nothing."""

    async def rows() -> dict[str, list[tuple[Any, ...]]]:
        if dsn := storage.get("database_url"):
            conn = await asyncpg.connect(dsn)
            try:
                return {t: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY 1")] for t in TABLES}
            finally:
                await conn.close()
        with sqlite3.connect(db_path) as db:
            return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in TABLES}

    return rows


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
async def make_client(aiohttp_client: Any, db_path: Path, storage: dict[str, Any]) -> MakeClient:
    async def make(config: Config | None = None, **sections: Any) -> TestClient[web.Request, web.Application]:
        client: TestClient[web.Request, web.Application] = await aiohttp_client(
            create_app(config or make_config(db_path, storage, **sections))
        )
        return client

    return make


@pytest.fixture
async def client(make_client: MakeClient, config: Config) -> TestClient[web.Request, web.Application]:
    return await make_client(config)


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


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:
    """Tests run on uvloop, like `run.py`: its transports differ from asyncio's in ways that matter."""
    import uvloop

    return {"uvloop": uvloop.new_event_loop}
