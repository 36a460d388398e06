"""The `Limiter` and `ConnectionSlots` contracts, one set of tests run against every implementation:
counted in this process and counted in Redis across processes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable

import pytest

from app.errors import RateLimited
from app.limits import ConnectionSlots, Limiter
from app.limits.local import LocalSlots, RateLimiter
from app.limits.redis import RedisRateLimiter, RedisSlots
from app.redis_client import Keys, connect

from .contracts import LOCAL, REDIS, redis_prefix_for
from .isolation import REDIS_URL

MakeLimiter = Callable[..., Limiter]  # (count, window_s=60.0)
MakeSlots = Callable[[int], ConnectionSlots]


@pytest.fixture(params=[LOCAL, REDIS])
def prefix(request: pytest.FixtureRequest) -> str | None:
    """The implementation under test: None for the local one, else the Redis one's key prefix."""
    return redis_prefix_for(request)


@pytest.fixture
async def makers(prefix: str | None) -> AsyncIterator[tuple[MakeLimiter, MakeSlots]]:
    """Makers of rate limiters (by hits per window, a minute unless said) and of slots (by limit) of one implementation;
    each made one counts apart from the others (a kind of its own in Redis)."""
    if prefix is None:
        yield (lambda count, window_s=60.0: RateLimiter(count, window_s=window_s)), LocalSlots
        return
    client = connect(REDIS_URL, pool_size=4)
    keys, kinds = Keys(prefix), itertools.count()

    def limiter(count: int, window_s: float = 60.0) -> Limiter:
        return RedisRateLimiter(client, keys, f"kind{next(kinds)}", count, window_s=window_s)

    def slots(limit: int) -> ConnectionSlots:
        return RedisSlots(client, keys, f"kind{next(kinds)}", limit)

    try:
        yield limiter, slots
    finally:
        await client.aclose()


@pytest.fixture
def make_limiter(makers: tuple[MakeLimiter, MakeSlots]) -> MakeLimiter:
    """A maker of rate limiters of the implementation under test."""
    return makers[0]


@pytest.fixture
def make_slots(makers: tuple[MakeLimiter, MakeSlots]) -> MakeSlots:
    """A maker of connection slots of the implementation under test."""
    return makers[1]


async def _refused(limiter: Limiter, key: str, per_minute: int) -> int:
    """The Retry-After of a hit that must be refused: whole seconds, at least 1, at most the time
    one hit's worth of the budget takes to come back (60 / per_minute, rounded up)."""
    with pytest.raises(RateLimited) as info:
        await limiter.check(key)
    retry_after = info.value.headers["Retry-After"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= -(-60 // per_minute), retry_after
    return int(retry_after)


# -- rate limits


@pytest.mark.parametrize("per_minute", [1, 5])
async def test_a_burst_of_per_minute_hits_then_refused_with_retry_after(
    make_limiter: MakeLimiter, per_minute: int
) -> None:
    limiter = make_limiter(per_minute)
    for _ in range(per_minute):
        await limiter.check("a")
    await _refused(limiter, "a", per_minute)
    await _refused(limiter, "a", per_minute)  # a refused hit does not reset the wait


async def test_hits_arriving_together_are_counted_exactly(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(5)
    results = await asyncio.gather(*(limiter.check("a") for _ in range(8)), return_exceptions=True)
    assert results[:5] == [None] * 5  # first come, first served
    assert all(isinstance(r, RateLimited) and int(r.headers["Retry-After"]) >= 1 for r in results[5:]), results


async def test_keys_are_independent(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(3)
    for _ in range(3):
        await limiter.check("a")
    await _refused(limiter, "a", 3)
    for _ in range(3):  # another key has its own full burst
        await limiter.check("b")
    await _refused(limiter, "b", 3)
    await _refused(limiter, "a", 3)
    await limiter.check("c")


async def test_a_window_other_than_a_minute_refills_at_its_own_pace(make_limiter: MakeLimiter) -> None:
    # 3 in 10 minutes: after the burst one hit's worth comes back in 200 s, where 3 a minute would
    # wait 20 s at most.
    limiter = make_limiter(3, window_s=600)
    for _ in range(3):
        await limiter.check("a")
    with pytest.raises(RateLimited) as info:
        await limiter.check("a")
    assert 190 <= int(info.value.headers["Retry-After"]) <= 200
    await limiter.check("b")


# -- connection slots


async def test_slots_are_taken_up_to_the_limit(make_slots: MakeSlots) -> None:
    slots = make_slots(2)
    assert await slots.acquire("alice", "c1") is True
    assert await slots.acquire("alice", "c2") is True
    assert await slots.acquire("alice", "c3") is False
    assert await slots.acquire("alice", "c4") is False


async def test_owners_are_independent(make_slots: MakeSlots) -> None:
    slots = make_slots(1)
    assert await slots.acquire("alice", "c1") is True
    assert await slots.acquire("bob", "c2") is True
    assert await slots.acquire("bob", "c1") is False  # full whoever asks: bob already holds his one
    assert await slots.acquire("alice", "c3") is False
    await slots.release("bob", "c2")
    assert await slots.acquire("alice", "c3") is False  # bob's release freed none of alice's
    assert await slots.acquire("bob", "c4") is True


async def test_a_slot_released_can_be_taken_again(make_slots: MakeSlots) -> None:
    slots = make_slots(1)
    assert await slots.acquire("alice", "c1") is True
    await slots.release("alice", "c1")
    assert await slots.acquire("alice", "c1") is True  # the same connection again
    await slots.release("alice", "c1")
    assert await slots.acquire("alice", "c2") is True  # or another one
    assert await slots.acquire("alice", "c3") is False


async def test_release_is_idempotent(make_slots: MakeSlots) -> None:
    slots = make_slots(2)
    assert await slots.acquire("alice", "c1") is True
    assert await slots.acquire("alice", "c2") is True
    await slots.release("alice", "c1")
    await slots.release("alice", "c1")  # twice: frees one slot, not two
    await slots.release("alice", "never-held")
    await slots.release("nobody", "c1")
    assert await slots.acquire("alice", "c3") is True
    assert await slots.acquire("alice", "c4") is False


async def test_the_same_connection_never_takes_two_slots(make_slots: MakeSlots) -> None:
    slots = make_slots(2)
    assert await slots.acquire("alice", "c1") is True
    assert await slots.acquire("alice", "c1") is True  # it holds one: it keeps that one
    assert await slots.acquire("alice", "c2") is True  # the second slot was still free
    assert await slots.acquire("alice", "c1") is True  # at the limit, a holder still holds
    assert await slots.acquire("alice", "c3") is False
    await slots.release("alice", "c1")  # one release gives its one slot back
    assert await slots.acquire("alice", "c3") is True
    assert await slots.acquire("alice", "c1") is False
