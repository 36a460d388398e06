"""WebSocket connection slots per owner (a user, a client address): counted in this process, or
across processes in Redis."""

from __future__ import annotations

from typing import Protocol


class ConnectionSlots(Protocol):
    async def acquire(self, owner: str, connection_id: str) -> bool:
        """Take a slot; False when the owner already holds the allowed number."""

    async def release(self, owner: str, connection_id: str) -> None:
        """Give a slot back (idempotent)."""


class LocalSlots:
    """Slots counted in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: dict[str, set[str]] = {}

    async def acquire(self, owner: str, connection_id: str) -> bool:
        """Take a slot if one is free."""
        held = self._held.setdefault(owner, set())
        if len(held) >= self.limit:
            return False
        held.add(connection_id)
        return True

    async def release(self, owner: str, connection_id: str) -> None:
        """Give a slot back."""
        held = self._held.get(owner)
        if held is not None:
            held.discard(connection_id)
            if not held:
                del self._held[owner]
