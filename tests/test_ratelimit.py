"""GCRA limits: a full burst, smooth refill, no double burst at a window edge."""

from __future__ import annotations

import pytest

from app.errors import RateLimited
from app.limits.local import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_one_per_interval() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=clock)
    assert [limiter.retry_after("u") for _ in range(10)] == [0.0] * 10
    wait = limiter.retry_after("u")
    assert wait == pytest.approx(6.0)
    clock.now += 6.0
    assert limiter.retry_after("u") == 0.0
    assert limiter.retry_after("u") > 0


def test_no_double_burst_at_window_edge() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=clock)
    allowed = 0
    for _ in range(120):  # two minutes of hammering, 1 s apart
        allowed += limiter.retry_after("u") == 0.0
        clock.now += 1.0
    assert allowed <= 10 + 20  # the burst, then one per 6 s: never 2 x 10 at a minute's edge


def test_keys_are_independent_and_swept() -> None:
    clock = Clock()
    limiter = RateLimiter(1, clock=clock)
    assert limiter.retry_after("a") == 0.0 and limiter.retry_after("b") == 0.0
    assert limiter.retry_after("a") > 0
    clock.now += 3600
    for i in range(5000):
        limiter.retry_after(f"k{i}")
    assert "a" not in limiter.tracked_keys


async def test_check_raises_whole_seconds() -> None:
    clock = Clock()
    limiter = RateLimiter(100, clock=clock)
    for _ in range(100):
        await limiter.check("ip")
    with pytest.raises(RateLimited) as info:
        await limiter.check("ip")
    assert info.value.headers == {"Retry-After": "1"}
