"""Nonces in Redis: `SET NX` as the fast first gate in front of the database's constraints."""

from __future__ import annotations

import secrets

import redis.asyncio as aioredis

from ..errors import TokenAlreadyUsed
from ..redis_client import COMPARE_AND_DELETE, Keys, TurnPipeline, unavailable_on_outage

IN_FLIGHT_SECONDS = 30  # a claim whose process died goes away after this (it refuses nobody meanwhile)
USED = b"used"


class RedisGate:
    """An award in flight marks its nonce; a committed one keeps it as used until the token expires."""

    def __init__(self, client: aioredis.Redis, keys: Keys, trips: TurnPipeline | None = None) -> None:
        self.client = client
        self.keys = keys
        self.trips = trips or TurnPipeline(client)
        self._release = client.register_script(COMPARE_AND_DELETE)

    async def claim(self, nonce: str) -> str | None:
        """This attempt's mark, None while another attempt holds the nonce; TokenAlreadyUsed once
        an award with it committed. A claim left by a process that died never refuses a retry."""
        # Marked with this attempt's own id and read back (SET NX GET, Redis 7): when the client
        # sends the trip again after a lost reply, the claim it already made is still its own.
        key, attempt = self.keys.nonce(nonce), f"in-flight:{secrets.token_hex(8)}"
        with unavailable_on_outage():
            held = await self.trips.call(lambda pipe: pipe.set(key, attempt, nx=True, ex=IN_FLIGHT_SECONDS, get=True))
        if held is None or held == attempt.encode():
            return attempt
        if held == USED:
            raise TokenAlreadyUsed()
        return None

    async def confirm(self, nonce: str, ttl_seconds: int) -> None:
        """Remember the nonce as used; losing this is harmless, the database refuses replays."""
        with unavailable_on_outage():
            key = self.keys.nonce(nonce)
            await self.trips.call(lambda pipe: pipe.set(key, USED, ex=ttl_seconds))

    async def release(self, nonce: str, attempt: str) -> None:
        """Free a nonce whose award was refused, unless another attempt's mark replaced this one's."""
        with unavailable_on_outage():
            await self.trips.script(self._release, [self.keys.nonce(nonce)], [attempt])
