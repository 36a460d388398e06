"""The Redis connection, the key names under one prefix, and how Redis outages surface."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import quote

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.commands.core import AsyncScript
from redis.connection import HiredisRespSerializer

from .batching import TurnBatch
from .errors import ServiceUnavailable
from .metrics.tally import Histogram

Command = Callable[[Pipeline], object]
Stack = Sequence[tuple[tuple[Any, ...], Mapping[str, Any]]]  # a pipeline's queued commands: (args, options)
# redis-py's synchronous client packs with hiredis's C packer; its asyncio client packs in Python,
# ~10 us a command. The trips use the former: the same bytes (tests/test_turn_pipeline.py).
PACKER = HiredisRespSerializer()
# A TurnPipeline keeps its connection between trips: the pool's checkout and return cost ~40 us a trip.
KEEP_CONNECTIONS = 1

# Failures that mean "Redis is not there right now"; anything else is a bug and stays loud.
OUTAGES = (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.BusyLoadingError, OSError)


# KEYS[1]: a key; ARGV[1]: the value its owner set. Deletes it only if it still holds that value:
# a claim, lock or request is let go only by whoever made it.
COMPARE_AND_DELETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
COMPARE_AND_EXPIRE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def database_of(client: aioredis.Redis) -> int:
    """The Redis database number the client's URL chose."""
    return int(client.connection_pool.connection_kwargs.get("db") or 0)


def connect(url: str, *, pool_size: int) -> aioredis.Redis:
    """A lazily connecting client with short timeouts, so an outage answers fast. The pool
    blocks (briefly) when all connections are busy instead of failing the request."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=2.0,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        health_check_interval=10,
        # After a Redis restart each pooled connection is dead; one quick retry reconnects it.
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes the pool


@contextlib.contextmanager
def unavailable_on_outage(what: str = "Redis") -> Iterator[None]:
    """Turn a Redis outage into 503 SERVICE_UNAVAILABLE."""
    try:
        yield
    except OUTAGES:
        raise ServiceUnavailable(f"{what} is unavailable") from None


class ShelfKeys(NamedTuple):
    """The keys of one board period; they live and die together (drop, expiry)."""

    rank: str  # sorted set: score -> member, the board's order (see ranking/ties.py)
    cards: str  # hash: user id -> the rest of a standing (see ranking/redis.py)
    # hash: user id -> the write sequence of their entry an operator removed lately (`seq_part`)
    removed: str


@functools.lru_cache(maxsize=4096)  # every write names its period's keys: quoting is 3 µs of a ~90 µs put
def _shelf(prefix: str, board: str, period: str) -> ShelfKeys:
    # Quoted: ids are free text, and "a:b" + "c" must not name the keys of "a" + "b:c".
    at = f"{prefix}:shelf:{quote(board, safe='')}:{quote(period, safe='')}"
    return ShelfKeys(rank=f"{at}:rank", cards=f"{at}:cards", removed=f"{at}:removed")


class Keys:
    """Every key of one deployment, under a common prefix (tests use one prefix each)."""

    def __init__(self, prefix: str, *, db: int = 0) -> None:
        self.prefix = prefix
        # hash: user id -> display name, one for every board, so that a rename is one command
        self.names = f"{prefix}:names"
        self.ready = f"{prefix}:ready"  # set once the boards were loaded from the database
        self.reload = f"{prefix}:reload"  # a load asked for: a process started after another may have died
        self.rebuilding = f"{prefix}:rebuilding"  # lock: one process rebuilds at a time
        # Pub/sub of award events. Redis has one pub/sub for all its databases: deployments on one
        # server with the same prefix in two databases would hear each other's awards, so the
        # channel names its database (database 0 keeps the name it always had).
        self.channel = f"{prefix}:awards" + (f"@{db}" if db else "")
        self.excluded = f"{prefix}:excluded"  # set: disqualified users, whom no put or load places

    def shelf(self, board: str, period: str) -> ShelfKeys:
        """The keys of one period of one board."""
        return _shelf(self.prefix, board, period)

    def flights(self, board: str, period: str) -> str:
        # sorted set: the writes of one board period under way, by deadline (app/flights)
        return f"{self.prefix}:flights:{quote(board, safe='')}:{quote(period, safe='')}"

    def nonce(self, nonce: str) -> str:
        return f"{self.prefix}:nonce:{nonce}"

    def rate(self, kind: str, key: str) -> str:
        return f"{self.prefix}:rate:{kind}:{key}"

    def active(self, minute: int) -> str:
        # HyperLogLog of the users active in one minute (Unix time // 60).
        return f"{self.prefix}:active:{minute}"

    def slots(self, kind: str, owner: str) -> str:
        # The kind keeps owners apart: a user id may look like an address.
        return f"{self.prefix}:ws:{kind}:{owner}"


class TurnPipeline:
    """Redis commands issued in one event-loop turn go out together, in one pipeline round trip:
    under load the awards in flight share each trip instead of paying redis-py's per-call cost
    (a pooled connection, a timeout, a send and a read) for each of their commands.

    One trip at a time: the commands issued while one is on its way go together in the next, in
    the order they came. A trip costs the process ~200 us whatever it carries, and an award's
    steps (nonce, placing, fan-out) each wait for one: with a trip per turn, a PostgreSQL award
    paid 0.6 of them, with one at a time 0.2."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.trips: TurnBatch[Command, Any] = TurnBatch(self._execute, cancelled=_trip_cancelled, most_in_flight=1)
        self.round_trips = Histogram()  # seconds of each trip that answered, for the metrics
        self._kept: list[Connection] = []  # checked out of the pool, idle between trips

    async def call(self, command: Command) -> Any:
        """Queue `command` (it adds one command to the pipeline) and return its reply; a reply
        that is an error is raised, an outage raises for every command of the trip."""
        return await self.trips.submit(command)

    async def script(self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        """Run a registered script by its hash in the shared trip; loaded once if Redis lost it."""
        try:
            return await self.call(lambda pipe: pipe.evalsha(script.sha, len(keys), *keys, *args))
        except redis_errors.NoScriptError:
            return await script(keys=keys, args=args)  # loads it, then runs it

    async def _execute(self, commands: list[Command]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)  # used to queue the commands, not to send them
        stack = pipe.command_stack
        replies: list[Any] = []
        packed: list[bytes] = []
        sent: list[tuple[int, tuple[Any, ...], Mapping[str, Any]]] = []  # position, args, options
        for i, command in enumerate(commands):
            try:
                queued = len(stack)
                command(pipe)  # queues one command; one that cannot be built or packed fails alone
                if len(stack) != queued + 1:
                    raise redis_errors.DataError("a command of a trip queues exactly one Redis command")
                args, options = stack[-1]
                packed.extend(PACKER.pack(*args))  # type: ignore[arg-type]  # typed `*args: List`, takes any
            except Exception as exc:
                replies.append(exc)
            else:
                replies.append(None)
                sent.append((i, args, options))
        if sent:
            started = time.perf_counter()
            try:
                answers = await self._send(b"".join(packed), [(args, options) for _, args, options in sent])
            except Exception as exc:  # an outage: every packed command of the trip failed
                answers = [exc] * len(sent)
            else:
                self.round_trips.observe(time.perf_counter() - started)
            for (i, _, _), reply in zip(sent, answers, strict=True):
                replies[i] = reply
        return replies

    async def _send(self, payload: bytes, stack: Stack) -> list[Any]:
        """The commands' replies (an error reply in its place), in one round trip on a kept
        connection; retried on a fresh one as the client's retry policy says, as
        `Pipeline.execute` would. `Pipeline.execute` itself costs ~130 us more a trip: a pooled
        connection each time and the bookkeeping of features not used here."""
        pool = self.client.connection_pool
        conn: Connection = self._kept.pop() if self._kept else await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            answers: list[Any] = await conn.retry.call_with_retry(
                lambda: self._exchange(conn, payload, stack), lambda _: conn.disconnect()
            )
        except BaseException:
            # Replies may be left unread (cancelled, or a reply callback failed): not reusable.
            await conn.disconnect(nowait=True)
            await pool.release(conn)
            raise
        if len(self._kept) < KEEP_CONNECTIONS:
            self._kept.append(conn)
        else:
            await pool.release(conn)
        return answers

    async def _exchange(self, conn: Connection, payload: bytes, stack: Stack) -> list[Any]:
        await conn.send_packed_command(payload)
        answers: list[Any] = []
        # One deadline for the trip's replies: redis-py's own reads set a timer for each (~10 us).
        try:
            async with asyncio.timeout(conn.socket_timeout):
                for args, options in stack:  # every reply is read, errors too: the connection stays in step
                    answers.append(await self._reply(conn, args[0], options))
        except TimeoutError:
            raise redis_errors.TimeoutError("Timeout reading from Redis") from None
        return answers

    async def _reply(self, conn: Connection, name: str, options: Mapping[str, Any]) -> Any:
        """One command's reply as `Redis.parse_response` gives it (its response callback applied),
        read without a timer of its own; an error reply is returned, not raised."""
        options = dict(options)
        try:
            # math.inf: no timer here; the trip's deadline covers the read.
            reply = await conn.read_response(
                disable_decoding=options.pop(NEVER_DECODE, None) is not None, timeout=math.inf
            )
        except redis_errors.ResponseError as exc:
            return options.get(EMPTY_RESPONSE, exc)
        options.pop(EMPTY_RESPONSE, None)
        options.pop("keys", None)  # for the client-side cache, which is not used
        callback = self.client.response_callbacks.get(name)
        if callback is None:
            return reply
        value = callback(reply, **options)
        return await value if inspect.isawaitable(value) else value


def _trip_cancelled() -> Exception:
    return redis_errors.ConnectionError("the Redis round trip was cancelled")
