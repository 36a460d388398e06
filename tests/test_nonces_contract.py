"""The `NonceGate` contract, one set of tests run against both gates. What they share: a claim of a
free nonce answers a mark, a release that is not the holder's frees nothing, and a holder's does.

Where they differ, by design: `OpenGate` (embedded: one writer already serialises awards) gates
nothing, so a nonce held or used is let through again and the database refuses the replay;
`RedisGate` answers None to a claim while another attempt holds the nonce, and refuses a nonce
confirmed as used with TokenAlreadyUsed. `gates` below tells the tests which one they face."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NamedTuple

import pytest

from app.errors import TokenAlreadyUsed
from app.nonces import NonceGate
from app.nonces.open import OpenGate
from app.nonces.redis import RedisGate
from app.redis_client import Keys, connect

from .contracts import LOCAL, REDIS, redis_prefix_for
from .isolation import REDIS_URL


class GateUnderTest(NamedTuple):
    """A gate, and whether it gates anything (Redis's) or lets every claim through (the open one)."""

    gate: NonceGate
    gates: bool


@pytest.fixture(params=[LOCAL, REDIS], ids=["open", "redis"])
def prefix(request: pytest.FixtureRequest) -> str | None:
    """The implementation under test: None for the open gate, else the Redis one's key prefix."""
    return redis_prefix_for(request)


@pytest.fixture
async def under_test(prefix: str | None) -> AsyncIterator[GateUnderTest]:
    """The gate of one implementation."""
    if prefix is None:
        yield GateUnderTest(OpenGate(), gates=False)
        return
    client = connect(REDIS_URL, pool_size=2)
    try:
        yield GateUnderTest(RedisGate(client, Keys(prefix)), gates=True)
    finally:
        await client.aclose()


async def _claimed(gate: NonceGate, nonce: str) -> str:
    """Claim a nonce that must be free: its mark."""
    mark = await gate.claim(nonce)
    assert isinstance(mark, str) and mark, mark
    return mark


async def test_a_free_nonce_is_claimed_with_a_mark(under_test: GateUnderTest) -> None:
    gate, _ = under_test
    await _claimed(gate, "n1")
    await _claimed(gate, "n2")  # nonces are independent


async def test_a_claim_while_another_attempt_holds_it_is_no_refusal(under_test: GateUnderTest) -> None:
    gate, gates = under_test
    await _claimed(gate, "n1")
    # Not refused either way: the attempt goes on to the database, which decides.
    if gates:
        assert await gate.claim("n1") is None  # and it holds no claim of its own
    else:
        await _claimed(gate, "n1")


async def test_only_the_holder_releases_a_claim(under_test: GateUnderTest) -> None:
    gate, gates = under_test
    first = await _claimed(gate, "n1")
    await gate.release("n1", "in-flight:another-attempt")  # not the holder's: frees nothing
    await gate.release("never-claimed", first)  # harmless
    if gates:
        assert await gate.claim("n1") is None  # still held by the first attempt
    await gate.release("n1", first)
    second = await _claimed(gate, "n1")  # free again
    if gates:
        assert second != first  # a claim of its own


async def test_claim_confirm_claim(under_test: GateUnderTest) -> None:
    gate, gates = under_test
    mark = await _claimed(gate, "n1")
    await gate.confirm("n1", 60)
    await gate.release("n1", mark)  # a late release of the claim the confirmation replaced
    if gates:
        with pytest.raises(TokenAlreadyUsed):
            await gate.claim("n1")
    else:
        await _claimed(gate, "n1")  # the open gate remembers nothing: the database refuses the replay
    await _claimed(gate, "n2")  # another nonce is not affected
