"""The nonce gate: a fast first check that turns a replayed token away before the database.

The database's constraints stay the guarantee; the gate only saves it work. A claim is a hint
that an attempt is under way, never a refusal: its process may have died before the commit.
Only a nonce confirmed after a commit is refused at the gate."""

from __future__ import annotations

from typing import Protocol


class NonceGate(Protocol):
    async def claim(self, nonce: str) -> str | None:
        """Mark a nonce as in flight: this attempt's mark if it holds the claim now, None if
        another attempt does (the database decides). TokenAlreadyUsed if an award with it committed."""

    async def confirm(self, nonce: str, ttl_seconds: int) -> None:
        """An award with the nonce committed: refuse it at the gate until the token expires."""

    async def release(self, nonce: str, attempt: str) -> None:
        """The attempt's award was refused: free the nonce, if the claim is still that attempt's."""
