"""Nonces in Redis: `SET NX` as the fast first gate in front of the database's constraints."""

from __future__ import annotations

import secrets

import redis.asyncio as aioredis

from .client import Keys, TurnPipeline, unavailable_on_outage

IN_FLIGHT_SECONDS = 30  # a process that dies mid-award frees the nonce after this


class RedisGate:
    """An award in flight holds its nonce; a committed one keeps it until the token expires."""

    def __init__(self, client: aioredis.Redis, keys: Keys, trips: TurnPipeline | None = None) -> None:
        self.client = client
        self.keys = keys
        self.trips = trips or TurnPipeline(client)

    async def claim(self, nonce: str) -> bool:
        """True for the first claimant only."""
        # Marked with this attempt's own id and read back (SET NX GET, Redis 7): when the client
        # sends the trip again after a lost reply, the claim it already made is still its own.
        key, attempt = self.keys.nonce(nonce), f"in-flight:{secrets.token_hex(8)}"
        with unavailable_on_outage():
            held = await self.trips.call(lambda pipe: pipe.set(key, attempt, nx=True, ex=IN_FLIGHT_SECONDS, get=True))
        return held is None or held == attempt.encode()

    async def confirm(self, nonce: str, ttl_seconds: int) -> None:
        """Remember the nonce as used; losing this is harmless, the database refuses replays."""
        with unavailable_on_outage():
            key = self.keys.nonce(nonce)
            await self.trips.call(lambda pipe: pipe.set(key, "used", ex=ttl_seconds))

    async def release(self, nonce: str) -> None:
        """Free a nonce whose award was refused."""
        with unavailable_on_outage():
            await self.client.delete(self.keys.nonce(nonce))
