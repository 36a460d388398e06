"""Redis is derived state: flushes, restarts and outages lose nothing, replay nothing, heal alone."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient

from app import create_app
from app.config import Config
from app.fanout.redis import RedisFanout
from app.ranking import keeper as keeper_module
from app.ranking.keeper import Keeper
from app.ranking.redis import RedisRanking
from app.records import BoardPeriod, Standing
from app.redis_client import Keys, connect
from app.storage.sqlite import SqliteStore

from .conftest import Flow, envelope, make_config
from .contracts import eventually
from .isolation import POSTGRES_URL, REDIS_URL, schema_dsn
from .real_servers import RedisServer, TcpProxy

Client = TestClient[web.Request, web.Application]


async def _board(client: Client) -> list[tuple[int, str, int]]:
    resp = await client.get("/api/v1/scoreboard/top?limit=100")
    body = await envelope(resp)
    assert body["success"], body  # a 503 while Redis is away: _eventually asks again
    data = body["data"]["leaderboard"]
    return [(e["rank"], e["userId"], e["score"]) for e in data]


@pytest.fixture
async def board(redis_prefix: str) -> AsyncIterator[RedisRanking]:
    client = connect(REDIS_URL, pool_size=4)
    yield RedisRanking(client, Keys(redis_prefix))
    await client.aclose()


def _config(db_path: Path, redis_url: str, **storage: Any) -> Config:
    return make_config(db_path, {"redis_url": redis_url, "redis_prefix": "iso", **storage})


async def test_flush_rebuilds_board_and_replay_stays_refused(
    aiohttp_client: Any, bearer: Any, db_path: Path, private_redis: RedisServer
) -> None:
    client: Client = await aiohttp_client(create_app(_config(db_path, private_redis.url)))
    flow = Flow(client, bearer)
    await flow.award("alice", "q1", "DEFEAT_BOSS")
    used = await flow.token("bob", "q1")
    assert (await flow.submit(used, user="bob")).status == 200
    before = await _board(client)
    assert before == [(1, "alice", 500), (2, "bob", 100)]

    private_redis.client().flushall()

    async def rebuilt() -> None:
        assert await _board(client) == before

    await eventually(rebuilt, 5.0)
    resp = await flow.submit(used, user="bob")  # the nonce gate forgot; the database did not
    assert resp.status == 409 and (await envelope(resp))["error"]["code"] == "TOKEN_ALREADY_USED"
    assert await _board(client) == before


async def test_redis_down_503_changes_nothing_then_recovers(
    aiohttp_client: Any, bearer: Any, db_path: Path, private_redis: RedisServer
) -> None:
    client: Client = await aiohttp_client(create_app(_config(db_path, private_redis.url)))
    flow = Flow(client, bearer)
    await flow.award("alice", "q1")
    token = await flow.token("alice", "q2")
    ws = await client.ws_connect("/ws/scoreboard")
    await ws.receive_json(timeout=3)
    await ws.send_json({"type": "subscribe", "channel": "leaderboard"})
    await ws.receive_json(timeout=3)
    assert (await ws.receive_json(timeout=3))["type"] == "leaderboard_update"

    private_redis.stop()
    resp = await flow.submit(token, action_id="q2")
    body = await envelope(resp)
    assert resp.status == 503 and body["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert (await client.get("/api/v1/scoreboard/top")).status == 503
    assert (await client.get("/readyz")).status == 200  # the database is fine; Redis is derived

    private_redis.start()  # back, and empty: no persistence

    async def recovered() -> None:
        assert await _board(client) == [(1, "alice", 100)]

    await eventually(recovered, 5.0)
    # Awards published while the channel was down were missed: the hub sends the board again.
    resync = await ws.receive_json(timeout=5)
    assert resync["type"] == "leaderboard_update"
    assert [(e["userId"], e["score"]) for e in resync["data"]["leaderboard"]] == [("alice", 100)]
    resp = await flow.submit(token, action_id="q2")  # the 503 did not use the token up
    assert resp.status == 200 and (await envelope(resp))["data"]["newScore"] == 200
    assert await _board(client) == [(1, "alice", 200)]
    await ws.close()


async def test_database_down_503_then_recovers(
    aiohttp_client: Any, bearer: Any, pg_schema: str, redis_prefix: str
) -> None:
    proxy = await TcpProxy(5432).start()
    dsn = schema_dsn(pg_schema).replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert POSTGRES_URL.split("@")[1].startswith("127.0.0.1:5432")
    config = make_config(Path("unused.db"), {"redis_url": REDIS_URL, "redis_prefix": redis_prefix, "database_url": dsn})
    client: Client = await aiohttp_client(create_app(config))
    flow = Flow(client, bearer)
    await flow.award("alice", "q1")
    token = await flow.token("alice", "q2")

    await proxy.cut()
    resp = await flow.submit(token, action_id="q2")
    assert resp.status == 503 and (await envelope(resp))["error"]["code"] == "SERVICE_UNAVAILABLE"
    resp = await client.post(
        "/api/v1/actions/initialize", json={"actionType": "COMPLETE_QUEST", "actionId": "q3"}, headers=bearer("alice")
    )
    assert resp.status == 503
    assert (await client.get("/readyz")).status == 503
    assert await _board(client) == [(1, "alice", 100)]  # reads from Redis still work

    await proxy.start()

    async def recovered() -> None:
        resp = await flow.submit(token, action_id="q2")
        assert resp.status == 200, await resp.text()

    await eventually(recovered, 5.0)
    assert await _board(client) == [(1, "alice", 200)]
    await proxy.cut()


def _nonce(token: str) -> str:
    payload = token.split(".")[1]
    nonce: str = msgspec.json.decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["nonce"]
    return nonce


@pytest.mark.parametrize("storage", ["redis", "postgres"], indirect=True)
async def test_a_claim_left_by_a_dead_process_refuses_no_retry(
    flow: Flow, client: Client, storage: dict[str, Any], redis_prefix: str
) -> None:
    # A process claimed these nonces and died (kill -9) before its transaction committed: the
    # claims outlive it in Redis. The database never saw the awards, so the retries award once.
    redis = aioredis.Redis.from_url(REDIS_URL)
    keys = Keys(redis_prefix)
    try:
        token = await flow.token("alice", "q1")
        await redis.set(keys.nonce(_nonce(token)), "in-flight:a-dead-process", ex=30)
        resp = await flow.submit(token, action_id="q1")
        assert resp.status == 200, await resp.text()
        assert (await envelope(resp))["data"]["newScore"] == 100
        assert await redis.get(keys.nonce(_nonce(token))) == b"used"

        # This one did commit before its process died, unconfirmed: the retry says it landed, and
        # the gate learns it, so the next replay stops there.
        token = await flow.token("alice", "q2")
        assert (await flow.submit(token, action_id="q2")).status == 200
        await redis.set(keys.nonce(_nonce(token)), "in-flight:a-dead-process", ex=30)
        resp = await flow.submit(token, action_id="q2")
        assert resp.status == 409 and (await envelope(resp))["error"]["code"] == "TOKEN_ALREADY_USED"
        assert await redis.get(keys.nonce(_nonce(token))) == b"used"
        assert (await envelope(await client.get("/api/v1/scoreboard/top")))["data"]["leaderboard"][0]["score"] == 200
    finally:
        await redis.aclose()


class Nobody:
    """A system of record with nobody on any board."""

    async def standings(self, board: str, period: str) -> list[Standing]:
        return []


async def test_a_reload_asked_during_a_load_waits_for_the_next(board: RedisRanking) -> None:
    await board.fill(Nobody(), {BoardPeriod(board="global", period="all"): None})  # a fill marks it ready
    assert not await board.needs_load()
    await board.ask_reload()
    assert await board.needs_load()
    asked = await board.reload_asked()
    assert asked is not None
    await board.ask_reload()  # another process started while the load read the database
    await board.reload_done(asked)
    assert await board.needs_load()
    again = await board.reload_asked()
    assert again is not None and again != asked
    await board.reload_done(again)
    assert not await board.needs_load()


async def test_the_rebuild_lock_is_let_go_only_by_its_holder(board: RedisRanking) -> None:
    mark = await board.lock_rebuild(1)
    assert mark is not None and await board.lock_rebuild(60) is None
    await asyncio.sleep(1.1)  # the holder took too long: its lock expired and another took it
    other = await board.lock_rebuild(60)
    assert other is not None
    await board.unlock_rebuild(mark)  # the first holder's late unlock leaves the other's lock
    assert await board.lock_rebuild(60) is None
    await board.unlock_rebuild(other)
    assert await board.lock_rebuild(60) is not None


@pytest.mark.parametrize("storage", ["redis", "postgres"], indirect=True)
async def test_a_new_process_reconciles_the_board_with_the_database(
    make_client: Any, bearer: Any, config: Config, redis_prefix: str
) -> None:
    first: Client = await make_client(config)
    flow = Flow(first, bearer)
    await flow.award("alice", "q1", "DEFEAT_BOSS")
    await flow.award("bob", "q1")
    # Bob's process was killed between his commit and its board write: Redis never got it.
    redis = aioredis.Redis.from_url(REDIS_URL)
    keys = Keys(redis_prefix)
    try:
        shelf = keys.shelf("global", "all")
        members = cast(list[bytes], await redis.zrange(shelf.rank, 0, -1))
        bob = next(m for m in members if m.endswith(b":bob"))
        await redis.zrem(shelf.rank, bob)
        await redis.hdel(shelf.cards, "bob")
    finally:
        await redis.aclose()
    assert await _board(first) == [(1, "alice", 500)]
    viewer = await first.ws_connect("/ws/scoreboard")
    await viewer.receive_json(timeout=3)
    await viewer.send_json({"type": "subscribe", "channel": "leaderboard"})
    assert (await viewer.receive_json(timeout=3))["type"] == "subscribed"
    assert (await viewer.receive_json(timeout=3))["type"] == "leaderboard_update"  # the snapshot

    # Its replacement starts: the board is reconciled with the database, and the viewers of
    # every process (this one's on the first) get the board again, though no award was made.
    second: Client = await make_client(config)

    async def reconciled() -> None:
        assert await _board(second) == [(1, "alice", 500), (2, "bob", 100)]

    await eventually(reconciled, 5.0)
    update = await viewer.receive_json(timeout=5)
    assert update["type"] == "leaderboard_update"
    assert [(e["userId"], e["score"]) for e in update["data"]["leaderboard"]] == [("alice", 500), ("bob", 100)]
    await viewer.close()


async def test_a_rebuild_renews_its_lock_and_a_dead_rebuilders_lapses(
    board: RedisRanking, redis_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keeper_module, "REBUILD_LEASE_SECONDS", 1)
    store = SqliteStore(str(tmp_path / "db.sqlite"))
    await store.open()
    keys = Keys(redis_prefix)
    client = board.client
    try:
        read = store.standings

        async def slowly(board_id: str, period: str) -> list[Standing]:  # a rebuild longer than its lease
            await asyncio.sleep(2.5)
            return await read(board_id, period)

        monkeypatch.setattr(store, "standings", slowly)
        keeper = Keeper(
            board, store, lambda: {BoardPeriod(board="global", period="all"): None}, RedisFanout(client, keys)
        )
        await board.ask_reload()
        rebuild = asyncio.create_task(keeper.ensure_filled())
        await asyncio.sleep(1.8)  # past the first lease: renewed, still held
        assert await client.get(keys.rebuilding) is not None and await board.lock_rebuild(1) is None
        assert await rebuild is True
        assert await client.get(keys.rebuilding) is None  # let go at the end
        # A rebuilder killed mid-way renews nothing: its lock lapses after one lease.
        assert await board.lock_rebuild(1) is not None
        assert 0 < await client.ttl(keys.rebuilding) <= 1
    finally:
        await store.close()
