"""What each test gets of its own, so tests never see each other's data: a key prefix in the
shared test Redis database and a schema in the shared PostgreSQL, both removed after the test,
or a whole redis-server of its own. conftest.py imports the fixtures, so every test file has
them: take them, never make a prefix or schema ad hoc (nor FLUSHDB the shared database).

Creating and removing prefixes and schemas is bench/storage.py's, which the benchmark uses too."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import pytest

from bench import storage as bench_storage

from .real_servers import RedisServer

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/1")
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def reachable(url: str, default_port: int) -> bool:
    """Whether a server answers on the URL's host and port."""
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


def schema_dsn(schema: str) -> str:
    """The test PostgreSQL's URL with `schema` (from the `pg_schema` fixture) as the search_path."""
    return bench_storage.schema_url(schema, POSTGRES_URL)


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own in the test Redis database; its keys are deleted after."""
    need_server("Redis", REDIS_URL, 6379)
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    await bench_storage.drop_redis_prefix(prefix, REDIS_URL)


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A PostgreSQL schema of this test's own; dropped after."""
    need_server("PostgreSQL", POSTGRES_URL, 5432)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    await bench_storage.create_schema(schema, POSTGRES_URL)
    yield schema
    await bench_storage.drop_schema(schema, POSTGRES_URL)


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may flush, stop and start again; killed after."""
    need_server("Redis", REDIS_URL, 6379)
    server = RedisServer().start()
    yield server
    server.stop()
