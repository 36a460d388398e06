"""The embedded nonce gate: nothing to gate."""

from __future__ import annotations


class OpenGate:
    """Embedded mode: one writer already serialises awards, so there is nothing to gate."""

    async def claim(self, nonce: str) -> str | None:
        """Always let it through."""
        return nonce

    async def confirm(self, nonce: str, ttl_seconds: int) -> None:
        """Nothing to remember."""

    async def release(self, nonce: str, attempt: str) -> None:
        """Nothing to free."""
