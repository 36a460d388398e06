"""The nonce gate: a fast first check that turns a replayed token away before the database.

The database's constraints stay the guarantee; the gate only saves it work."""

from __future__ import annotations

from typing import Protocol


class NonceGate(Protocol):
    async def claim(self, nonce: str) -> bool:
        """Mark a nonce as in flight; False if it is already in flight or used."""

    async def confirm(self, nonce: str, ttl_seconds: int) -> None:
        """The award committed: remember the nonce as used until the token expires."""

    async def release(self, nonce: str) -> None:
        """The award was refused: free the nonce so the token can still be used."""


class OpenGate:
    """Embedded mode: one writer already serialises awards, so there is nothing to gate."""

    async def claim(self, nonce: str) -> bool:
        """Always let it through."""
        return True

    async def confirm(self, nonce: str, ttl_seconds: int) -> None:
        """Nothing to remember."""

    async def release(self, nonce: str) -> None:
        """Nothing to free."""
