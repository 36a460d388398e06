"""The shared rate limit: exact across processes, and one Redis call for the hits of a moment."""

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
        limiter = RedisRateLimiter(client, Keys(redis_prefix), "ip", per_minute=3)
        calls = _counting(limiter)
        results = await asyncio.gather(
            *(limiter.check("a") for _ in range(5)), *(limiter.check("b") for _ in range(2)), return_exceptions=True
        )
        assert calls == [2]  # both keys, one call
        assert results[:3] == [None, None, None] and results[5:] == [None, None]
        refused = results[3:5]
        assert all(isinstance(r, RateLimited) and int(r.headers["Retry-After"]) >= 1 for r in refused)
        # Another process sees the same counts; hits one after another are one call each.
        other = RedisRateLimiter(client, Keys(redis_prefix), "ip", per_minute=3)
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
        limiter = RedisRateLimiter(client, Keys("absent"), "ip", per_minute=10)
        results = await asyncio.gather(*(limiter.check(k) for k in "aab"), return_exceptions=True)
        assert all(isinstance(r, ServiceUnavailable) for r in results), results
    finally:
        await client.aclose()
