"""The shared rate limit across processes: one Redis call for the hits of a moment, and reservations
that a busy key's hits are answered from without a round trip (counted in Redis when made, so the
processes together let through the quota and no more)."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest

from app.errors import RateLimited, ServiceUnavailable
from app.limits.redis import RedisRateLimiter
from app.nonces.redis import RedisGate
from app.redis_client import Keys, connect

from .isolation import REDIS_URL


def _counting(limiter: RedisRateLimiter) -> list[int]:
    """Count the limiter's script calls (each call still goes to Redis)."""
    calls: list[int] = []
    script = limiter.trips.script

    async def counted(*args: Any) -> Any:
        calls.append(len(args[1]))  # (script, keys, args)
        return await script(*args)

    limiter.trips.script = counted  # type: ignore[method-assign,assignment]
    return calls


async def test_hits_arriving_together_take_one_call_and_keep_exact_limits(redis_prefix: str) -> None:
    client = connect(REDIS_URL, pool_size=4)
    try:
        limiter = RedisRateLimiter(client, Keys(redis_prefix), "ip", count=3)
        calls = _counting(limiter)
        results = await asyncio.gather(
            *(limiter.check("a") for _ in range(5)), *(limiter.check("b") for _ in range(2)), return_exceptions=True
        )
        assert calls == [2]  # both keys, one call
        assert results[:3] == [None, None, None] and results[5:] == [None, None]
        refused = results[3:5]
        assert all(isinstance(r, RateLimited) and int(r.headers["Retry-After"]) >= 1 for r in refused)
        # Another process sees the same counts; hits one after another are one call each.
        other = RedisRateLimiter(client, Keys(redis_prefix), "ip", count=3)
        other_calls = _counting(other)
        with pytest.raises(RateLimited):
            await other.check("a")
        await other.check("b")
        with pytest.raises(RateLimited):
            await other.check("b")
        assert other_calls == [1, 1, 1]
    finally:
        await client.aclose()


async def test_a_claim_sent_again_after_a_lost_reply_is_still_its_own(
    redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = connect(REDIS_URL, pool_size=2)
    try:
        gate = RedisGate(client, Keys(redis_prefix))
        monkeypatch.setattr(secrets, "token_hex", lambda n: "attempt-1")
        first = await gate.claim("n1")
        assert first is not None
        assert await gate.claim("n1") == first  # the same attempt again (redis-py resends a trip on a lost reply)
    finally:
        await client.aclose()


async def test_every_waiting_hit_gets_503_when_redis_is_down() -> None:
    client = connect("redis://127.0.0.1:1/0", pool_size=2)  # nothing listens on port 1
    try:
        limiter = RedisRateLimiter(client, Keys("absent"), "ip", count=10)
        results = await asyncio.gather(*(limiter.check(k) for k in "aab"), return_exceptions=True)
        assert all(isinstance(r, ServiceUnavailable) for r in results), results
    finally:
        await client.aclose()


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _hit(limiter: RedisRateLimiter, key: str) -> bool:
    """One hit: True when allowed; a refusal carries a Retry-After of at least a second."""
    try:
        await limiter.check(key)
    except RateLimited as exc:
        assert int(exc.headers["Retry-After"]) >= 1
        return False
    return True


async def test_two_processes_reserving_from_one_quota_let_through_the_quota_and_no_more(redis_prefix: str) -> None:
    clients = [connect(REDIS_URL, pool_size=2) for _ in range(2)]  # a process each
    try:
        clock = Clock()  # standing still: each key stays busy, so its reservations grow
        limiters = [
            RedisRateLimiter(c, Keys(redis_prefix), "ip", count=10, reserve_at_most=4, clock=clock) for c in clients
        ]
        calls = [_counting(limiter) for limiter in limiters]
        allowed = [0, 0]
        trips_while_allowed = 0
        for _ in range(12):  # the client's requests alternate between the two processes
            for i, limiter in enumerate(limiters):
                before = len(calls[i])
                if await _hit(limiter, "a"):
                    allowed[i] += 1
                    trips_while_allowed += len(calls[i]) - before
        held = [limiter.reserved("a") for limiter in limiters]
        # Redis counts a reservation when it is made: every hit it counted was answered once or
        # is still held, and together that is the quota.
        assert sum(allowed) + sum(held) == 10, (allowed, held)
        assert all(allowed), allowed  # each process had its share
        assert trips_while_allowed < sum(allowed)  # some hits were answered from a reservation
        assert all(limiter.reserve_at_most >= n for limiter, n in zip(limiters, held, strict=True))
    finally:
        for c in clients:
            await c.aclose()


async def test_hits_arriving_together_in_two_processes_share_one_quota(redis_prefix: str) -> None:
    clients = [connect(REDIS_URL, pool_size=2) for _ in range(2)]
    try:
        clock = Clock()
        limiters = [
            RedisRateLimiter(c, Keys(redis_prefix), "ip", count=20, reserve_at_most=3, clock=clock) for c in clients
        ]
        allowed = 0
        for _ in range(8):  # rounds of 3 hits on each process in one loop turn
            results = await asyncio.gather(*(_hit(limiter, "a") for limiter in limiters for _ in range(3)))
            allowed += sum(results)
        assert allowed + sum(limiter.reserved("a") for limiter in limiters) == 20
    finally:
        for c in clients:
            await c.aclose()


def _asked(limiter: RedisRateLimiter) -> list[list[int]]:
    """Record what each of the limiter's script calls asks for: per key, its hits and reservation."""
    asked: list[list[int]] = []
    script = limiter.trips.script

    async def recorded(*args: Any) -> Any:
        asked.append([int(n) for n in args[2][2:]])  # (script, keys, [interval, tolerance, *wanted])
        return await script(*args)

    limiter.trips.script = recorded  # type: ignore[method-assign,assignment]
    return asked


async def test_a_reservation_grows_while_a_key_is_busy_and_shrinks_when_it_is_not(redis_prefix: str) -> None:
    client = connect(REDIS_URL, pool_size=2)
    try:
        clock = Clock()
        limiter = RedisRateLimiter(client, Keys(redis_prefix), "ip", count=600, clock=clock)
        assert limiter.reserve_at_most == 6  # 1 % of the quota by default
        asked = _asked(limiter)
        await limiter.check("once")
        assert asked == [[1]] and limiter.reserved("once") == 0  # a key seen once: its hit alone
        asked.clear()
        for _ in range(12):  # back at once, again and again: 1 hit, then with 1, 2, 4, 6 (at most) more
            await limiter.check("busy")
        assert asked == [[1], [2], [3], [5], [7]] and limiter.reserved("busy") == 6
        clock.now += 2.0  # then seldom: what it holds is answered here, the next reservation is halved
        for _ in range(7):
            await limiter.check("busy")
        assert asked[5:] == [[4]] and limiter.reserved("busy") == 3
        clock.now += 61.0  # a minute without a trip for it: forgotten with what it held
        await limiter.check("other")
        assert limiter.reserved("busy") == 0
        await limiter.check("busy")
        assert asked[-1] == [1]
    finally:
        await client.aclose()


async def test_limits_under_the_share_reserve_nothing(redis_prefix: str) -> None:
    client = connect(REDIS_URL, pool_size=2)
    try:
        limiter = RedisRateLimiter(client, Keys(redis_prefix), "update", count=99, clock=Clock())
        assert limiter.reserve_at_most == 0
        asked = _asked(limiter)
        for _ in range(3):
            await limiter.check("u")
        assert asked == [[1], [1], [1]]  # every hit counted in Redis as it comes
    finally:
        await client.aclose()
