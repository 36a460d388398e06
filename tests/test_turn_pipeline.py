"""Redis commands of one loop turn share one pipeline round trip; each caller gets its own reply."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from app.redis_client import KEEP_CONNECTIONS, Command, TurnPipeline, connect

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


async def test_one_trip_at_a_time_the_others_wait_and_go_together_in_order(
    client: aioredis.Redis, redis_prefix: str
) -> None:
    sizes: list[int] = []
    trips = TurnPipeline(client)
    trips.trips.observe(sizes.append)
    empty, key = f"{redis_prefix}:empty", f"{redis_prefix}:list"
    slow = asyncio.create_task(trips.call(lambda p: p.blpop([empty], 0.2)))  # on its way for 0.2 s
    await asyncio.sleep(0.05)
    later = []
    for value in ("a", "b", "c"):  # three turns while the first trip is out
        later.append(asyncio.create_task(trips.call(_push(key, value))))
        await asyncio.sleep(0)
    assert sizes == [1]  # nothing else started meanwhile
    assert await slow is None
    assert [await t for t in later] == [1, 2, 3]  # one trip, in the order they came
    assert sizes == [1, 3]
    assert await client.lrange(key, 0, -1) == [b"a", b"b", b"c"]


def _push(key: str, value: str) -> Command:
    return lambda pipe: pipe.rpush(key, value)


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


async def test_replies_are_the_librarys_pipeline_replies(client: aioredis.Redis, redis_prefix: str) -> None:
    # The trip sends and reads on its own: each reply must be what redis-py's own pipeline gives,
    # its response callbacks applied (scores as floats, flags as bools, hashes as dicts).
    zset, hash_, text = f"{redis_prefix}:z", f"{redis_prefix}:h", f"{redis_prefix}:t"
    await client.zadd(zset, {"a": 1.5, "b": 2, "c": -3})
    await client.hset(hash_, mapping={"x": "1", "y": "é"})
    await client.set(text, "not a number")
    commands: list[Command] = [
        lambda p: p.zrevrange(zset, 0, -1, withscores=True),
        lambda p: p.zscore(zset, "a"),
        lambda p: p.zscore(zset, "missing"),
        lambda p: p.zrevrank(zset, "c"),
        lambda p: p.hgetall(hash_),
        lambda p: p.hmget(hash_, ["y", "nope"]),
        lambda p: p.set(f"{redis_prefix}:new", "v", nx=True),
        lambda p: p.exists(zset, hash_, "none"),
        lambda p: p.incr(text),  # an error reply
        lambda p: p.eval("return {1, 'two', {3}}", 0),
        # Arguments of every kind the packer takes, and a reply of each of them back.
        lambda p: p.zadd(f"{redis_prefix}:z2", {"é": 0.1, "x": -0.0}),
        lambda p: p.zadd(f"{redis_prefix}:z2", {b"\xff\x00": 10**20}),
        lambda p: p.zrange(f"{redis_prefix}:z2", 0, -1, withscores=True),
        lambda p: p.mget([]),  # no keys: the library's empty answer instead of Redis's error
        lambda p: p.dump(hash_),  # read without decoding
        lambda p: p.execute_command("CONFIG GET", "maxmemory-policy"),  # a two-word command
    ]
    await client.delete(f"{redis_prefix}:new", f"{redis_prefix}:z2")
    pipe = client.pipeline(transaction=False)
    for command in commands:
        command(pipe)
    expected = await pipe.execute(raise_on_error=False)
    await client.delete(f"{redis_prefix}:new", f"{redis_prefix}:z2")
    trips = TurnPipeline(client)
    got = await asyncio.gather(*(trips.call(c) for c in commands), return_exceptions=True)
    assert [type(r) if isinstance(r, Exception) else r for r in got] == [
        type(r) if isinstance(r, Exception) else r for r in expected
    ]
    assert isinstance(got[8], redis_errors.ResponseError)
    assert got[13] == [] and isinstance(got[14], bytes)


@pytest.mark.parametrize(
    "args",
    [
        ("SET", "k", "v", "NX", "GET", "EX", 30),
        ("ZADD", "k", 1.5, "m", 0.1, "n", 1e20, "o", -0.0, "p", float("inf"), "q"),
        ("EVALSHA", "a" * 40, 3, "k1", "k2", "k3", 10**30, -5, 59999.939999999995),
        ("HSET", "names", "é", "名前", b"\xff\x00\r\n", memoryview(b"view"), bytearray(b"array"), ""),
        ("CONFIG GET", "maxmemory"),
        (b"CONFIG SET", b"x", b"y"),
        ("SET", "k", "x" * 100_000),  # over the library's buffer cutoff: sent in pieces there
    ],
)
def test_commands_are_packed_as_the_library_packs_them(args: tuple[object, ...]) -> None:
    from redis.asyncio.connection import Connection

    from app.redis_client import PACKER

    assert b"".join(PACKER.pack(*args)) == b"".join(Connection().pack_command(*args))  # type: ignore[arg-type]


async def test_a_command_whose_arguments_cannot_be_sent_fails_alone(client: aioredis.Redis, redis_prefix: str) -> None:
    trips = TurnPipeline(client)
    key = f"{redis_prefix}:k"
    replies = await asyncio.gather(
        trips.call(lambda p: p.set(key, "v")),
        trips.call(lambda p: p.set(f"{redis_prefix}:none", None)),  # type: ignore[arg-type]
        trips.call(lambda p: p.hset(f"{redis_prefix}:h", "flag", True)),
        trips.call(lambda p: p.set(f"{redis_prefix}:bad", "\ud800")),  # a lone surrogate: no UTF-8
        trips.call(lambda p: None),  # queues nothing
        trips.call(lambda p: p.get(key)),
        return_exceptions=True,
    )
    assert replies[0] is True and replies[5] == b"v"
    assert [type(r) for r in replies[1:5]] == [
        redis_errors.DataError,
        redis_errors.DataError,
        UnicodeEncodeError,
        redis_errors.DataError,
    ]
    assert await client.exists(f"{redis_prefix}:none", f"{redis_prefix}:h", f"{redis_prefix}:bad") == 0


async def test_replies_late_past_the_socket_timeout_fail_the_trip_as_an_outage(redis_prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=0.2)  # no retries: one attempt
    try:
        trips = TurnPipeline(client)
        key = f"{redis_prefix}:k"
        replies = await asyncio.gather(
            trips.call(lambda p: p.set(key, "v")),
            trips.call(lambda p: p.blpop([f"{redis_prefix}:empty"], 1)),  # answers after 1 s
            return_exceptions=True,
        )
        assert [type(r) for r in replies] == [redis_errors.TimeoutError, redis_errors.TimeoutError]
        assert await trips.call(lambda p: p.get(key)) == b"v"  # the next trip, on a new connection
    finally:
        await client.aclose()


async def test_a_killed_connection_is_replaced_on_the_next_trip(client: aioredis.Redis, redis_prefix: str) -> None:
    trips = TurnPipeline(client)
    key = f"{redis_prefix}:k"
    first = await trips.call(lambda p: p.client_id())
    await client.client_kill_filter(_id=first)  # as a Redis restart or an idle timeout would
    assert await trips.call(lambda p: p.set(key, "v")) is True
    assert await trips.call(lambda p: p.client_id()) != first
    assert await trips.call(lambda p: p.get(key)) == b"v"


async def test_a_cancelled_trip_leaves_no_reply_for_the_next(client: aioredis.Redis, redis_prefix: str) -> None:
    trips = TurnPipeline(client)
    empty, key = f"{redis_prefix}:empty", f"{redis_prefix}:k"
    await client.set(key, "mine")
    # A trip cancelled while its reply is still on its way (BLPOP waits 0.3 s for nothing)...
    waiting = asyncio.create_task(trips.call(lambda p: p.blpop([empty], 0.3)))
    await asyncio.sleep(0.05)
    for task in list(trips.trips._running):
        task.cancel()
    with pytest.raises(redis_errors.ConnectionError):
        await waiting
    # ...must not hand its late reply (nil) to the next trip's command.
    await asyncio.sleep(0.4)
    assert await trips.call(lambda p: p.get(key)) == b"mine"


async def test_trips_keep_few_connections(client: aioredis.Redis, redis_prefix: str) -> None:
    trips = TurnPipeline(client)
    key = f"{redis_prefix}:k"
    for _ in range(20):
        await trips.call(lambda p: p.incr(key))
    pool = client.connection_pool
    assert isinstance(pool, aioredis.BlockingConnectionPool)
    assert len(pool._in_use_connections) <= KEEP_CONNECTIONS
    assert await client.get(key) == b"20"
