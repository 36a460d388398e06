"""Redis commands of one loop turn share one pipeline round trip; each caller gets its own reply."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from app.redis_client import TurnPipeline, connect

from .isolation import REDIS_URL


@pytest.fixture
async def client(redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = connect(REDIS_URL, pool_size=4)
    yield client
    await client.aclose()


async def test_one_trip_per_turn_and_each_reply_to_its_caller(client: aioredis.Redis, redis_prefix: str) -> None:
    sizes: list[int] = []  # the commands of each round trip
    trips = TurnPipeline(client)
    trips.trips.observe(sizes.append)
    key, text = f"{redis_prefix}:n", f"{redis_prefix}:s"
    await client.set(text, "not a number")
    replies = await asyncio.gather(
        trips.call(lambda p: p.set(key, "a", nx=True)),
        trips.call(lambda p: p.set(key, "b", nx=True)),  # the second NX in the same trip loses
        trips.call(lambda p: p.incr(text)),  # an error reply: raised for this caller only
        trips.call(lambda p: p.get(key)),
        return_exceptions=True,
    )
    assert sizes == [4]
    assert replies[0] is True and replies[1] is None and replies[3] == b"a"
    assert isinstance(replies[2], redis_errors.ResponseError)
    assert await trips.call(lambda p: p.get(key)) == b"a"  # a later turn: a trip of its own
    assert sizes == [4, 1]


async def test_a_command_that_cannot_be_packed_fails_alone(client: aioredis.Redis, redis_prefix: str) -> None:
    trips = TurnPipeline(client)
    key = f"{redis_prefix}:k"

    def broken(pipe: object) -> None:
        raise redis_errors.DataError("no such option")

    replies = await asyncio.gather(
        trips.call(lambda p: p.set(key, "v")),
        trips.call(broken),
        trips.call(lambda p: p.get(key)),
        return_exceptions=True,
    )
    assert replies[0] is True and isinstance(replies[1], redis_errors.DataError) and replies[2] == b"v"


async def test_a_script_redis_lost_is_loaded_again(client: aioredis.Redis, redis_prefix: str) -> None:
    trips = TurnPipeline(client)
    script = client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    key = f"{redis_prefix}:count"
    assert await trips.script(script, [key], [2]) == 2
    await client.script_flush()  # as after a Redis restart
    assert await trips.script(script, [key], [3]) == 5


async def test_an_outage_fails_every_command_of_the_trip() -> None:
    client = connect("redis://127.0.0.1:1/0", pool_size=2)  # nothing listens on port 1
    try:
        trips = TurnPipeline(client)
        replies = await asyncio.gather(*(trips.call(lambda p: p.get("k")) for _ in range(3)), return_exceptions=True)
        assert all(isinstance(r, redis_errors.ConnectionError | OSError) for r in replies), replies
    finally:
        await client.aclose()
