"""Shared fixtures: a per-test configuration, app, client and database snapshot, and the REST
flow as a player drives it. What each test gets of its own (a Redis prefix, a PostgreSQL
schema, a private redis-server) is tests/isolation.py's; its fixtures are imported here."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
import uvloop
from aiohttp import web
from aiohttp.test_utils import TestClient

from app import create_app
from app.auth import UserAuth
from app.config import Config, Secrets, parse_settings

from .browsers import browser  # noqa: F401 - the fixture, for the page's tests
from .identity_provider import idp  # noqa: F401 - the fixture: a test identity provider serving its JWKS
from .isolation import REDIS_URL, pg_schema, private_redis, redis_prefix, schema_dsn  # noqa: F401 - the fixtures, for every test
from .stores import dsn, store  # noqa: F401 - the store fixtures

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


BACKENDS = ["embedded", "redis", "postgres"]


def make_config(db_path: Path, storage: dict[str, Any] | None = None, **sections: Any) -> Config:
    """A test configuration with its own SQLite file; keyword tables are merged over the base."""
    raw = _merge(BASE_SETTINGS, {"storage": {"sqlite_path": str(db_path), **(storage or {})}, **sections})
    return Config(settings=parse_settings(raw), secrets=Secrets(jwt=JWT_SECRET, action=ACTION_SECRET), env="test")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """This test's SQLite file (not created yet)."""
    return tmp_path / "scoreboard.db"


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The storage settings of one set-up: embedded; SQLite + Redis; PostgreSQL + Redis."""
    if request.param == "embedded":
        return {}
    settings: dict[str, Any] = {"redis_url": REDIS_URL, "redis_prefix": request.getfixturevalue("redis_prefix")}
    if request.param == "postgres":
        settings["database_url"] = schema_dsn(request.getfixturevalue("pg_schema"))
    return settings


@pytest.fixture(autouse=True)
def _stores_outlive_apps(request: pytest.FixtureRequest) -> None:
    """Set up the test's Redis prefix, schema or redis-server before any app, so that they are
    removed only after every app closed: fixtures are torn down in the reverse order they were set
    up, and `aiohttp_client` (which closes the apps) usually comes first in a signature. Otherwise
    an app still running saw its keys deleted and refilled them after the prefix was dropped, read
    a dropped schema, or lost its redis-server while closing."""
    for name in ("storage", "private_redis", "pg_schema", "redis_prefix"):
        if name in request.fixturenames:
            request.getfixturevalue(name)


@pytest.fixture
def config(db_path: Path, storage: dict[str, Any]) -> Config:
    """The test configuration over this test's storage set-up."""
    return make_config(db_path, storage)


Snapshot = Callable[[], Awaitable[dict[str, list[tuple[Any, ...]]]]]
TABLES = (
    "users",
    "action_tokens",
    "score_history",
    "board_entries",
    "board_history",
    "idempotency_keys",
    "attestations",
    "held_awards",
    "moderation",
)


@pytest.fixture
def snapshot(db_path: Path, storage: dict[str, Any]) -> Snapshot:
    """Every row of every table, read from the system of record: proves a refusal changed nothing."""

    async def rows() -> dict[str, list[tuple[Any, ...]]]:
        if database_url := storage.get("database_url"):
            conn = await asyncpg.connect(database_url)
            try:
                return {t: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY 1")] for t in TABLES}
            finally:
                await conn.close()
        with sqlite3.connect(db_path) as db:
            return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in TABLES}

    return rows


@pytest.fixture
def user_auth() -> UserAuth:
    """Issues and verifies users' JWTs with the test secret."""
    return UserAuth(JWT_SECRET)


@pytest.fixture
def bearer(user_auth: UserAuth) -> Callable[..., dict[str, str]]:
    """`bearer(user_id, name=None)`: the Authorization header of a user."""

    def headers(user_id: str = "alice", name: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {user_auth.issue(user_id, name=name or user_id.title())}"}

    return headers


MakeClient = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def make_client(aiohttp_client: Any, db_path: Path, storage: dict[str, Any]) -> MakeClient:
    """`make_client(config=None, **tables)`: a test client of an app over this test's storage."""

    async def make(config: Config | None = None, **sections: Any) -> TestClient[web.Request, web.Application]:
        client: TestClient[web.Request, web.Application] = await aiohttp_client(
            create_app(config or make_config(db_path, storage, **sections))
        )
        return client

    return make


@pytest.fixture
async def client(make_client: MakeClient, config: Config) -> TestClient[web.Request, web.Application]:
    """A test client of the app with the test configuration."""
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


async def send(client: Any, method: str, path: str, headers: Any, body: Any) -> tuple[int, Any]:
    """A request whose body is JSON (raw when bytes, none when None); its status and its data or error."""
    kwargs: dict[str, Any] = {"headers": headers}
    if isinstance(body, bytes):
        kwargs["data"] = body
    elif body is not None:
        kwargs["json"] = body
    resp = await client.request(method, path, **kwargs)
    answer = await envelope(resp)
    return resp.status, answer["data"] if answer["success"] else answer["error"]


class Flow:
    """The REST flow as a player would drive it."""

    def __init__(self, client: TestClient[web.Request, web.Application], bearer: Callable[..., dict[str, str]]):
        self.client = client
        self.bearer = bearer

    async def token(self, user: str = "alice", action_id: str = "q1", action_type: str = "COMPLETE_QUEST") -> str:
        """Initialize an action; its action token."""
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
        """Send an update with `token`; the response, whatever it is."""
        return await self.client.post(
            "/api/v1/scoreboard/update",
            json={"actionToken": token, "actionId": action_id, **extra},
            headers=self.bearer(user),
        )

    async def award(self, user: str = "alice", action_id: str = "q1", action_type: str = "COMPLETE_QUEST") -> Any:
        """Initialize and update, asserting both succeed; the update's data."""
        token = await self.token(user, action_id, action_type)
        resp = await self.submit(token, user, action_id)
        body = await envelope(resp)
        assert resp.status == 200, body
        return body["data"]


@pytest.fixture
def flow(client: TestClient[web.Request, web.Application], bearer: Callable[..., dict[str, str]]) -> Flow:
    """The REST flow against `client`."""
    return Flow(client, bearer)


class _TestLoop(uvloop.Loop):
    """uvloop's loop, with a tick while the default executor shuts down at a test's end: once in a
    clean-clone run the loop slept in epoll for good after the shutdown thread had queued its
    result (its wakeup lost), and a timer makes the loop look at its queue again."""

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        ticking: list[asyncio.TimerHandle] = []

        def tick() -> None:
            ticking[:] = [self.call_later(0.1, tick)]

        tick()
        try:
            await super().shutdown_default_executor(timeout)
        finally:
            ticking[0].cancel()

    def close(self) -> None:
        # uvloop closes what a test left open (a transport, a server) with a ResourceWarning each,
        # warned from inside a libuv callback that swallows exceptions, *before* closing it: under
        # `filterwarnings = error` the warning raises, the close is skipped, and the loop's last run
        # waits on the still-active handle for ever. Recorded here, uvloop goes on to close each one,
        # as it does outside the tests; the leak is then reported, naming the test, once the loop is
        # closed.
        with warnings.catch_warnings(record=True) as unclosed:
            warnings.simplefilter("always", ResourceWarning)
            super().close()
        if unclosed:
            test = os.environ.get("PYTEST_CURRENT_TEST", "a test")
            found = "\n".join(f"  {w.message}" for w in unclosed)
            warnings.warn(f"{test} left these open when its event loop closed:\n{found}", ResourceWarning, stacklevel=2)


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:
    """Tests run on uvloop, like `run.py`: its transports differ from asyncio's in ways that matter."""
    return {"uvloop": _TestLoop}
