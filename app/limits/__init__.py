"""Limits: rate limits (GCRA, a token bucket kept as one timestamp per key: no double burst at an
edge) and WebSocket connection slots per owner (a user, a client address); counted in this
process (`local`) or across processes (`redis`)."""

from __future__ import annotations

import math
from typing import Protocol

from ..errors import RateLimited


class Limiter(Protocol):
    refused: int  # hits refused so far in this process (the metrics read it)

    async def check(self, key: str) -> None:
        """Count one hit; raise RateLimited (with Retry-After) when over the limit."""


def refuse(wait_seconds: float) -> RateLimited:
    """The error for a hit that must wait, with Retry-After in whole seconds."""
    return RateLimited(max(1, math.ceil(wait_seconds)))


class ConnectionSlots(Protocol):
    async def acquire(self, owner: str, connection_id: str) -> bool:
        """Take a slot; False when the owner already holds the allowed number. Idempotent: a
        connection that holds a slot keeps that one (True) and never takes a second."""

    async def release(self, owner: str, connection_id: str) -> None:
        """Give a slot back (idempotent)."""
