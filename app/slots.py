"""WebSocket connection slots per user: counted in this process, or across processes in Redis."""

from __future__ import annotations

from typing import Protocol


class ConnectionSlots(Protocol):
    async def acquire(self, user_id: str, connection_id: str) -> bool:
        """Take a slot; False when the user already holds the allowed number."""

    async def release(self, user_id: str, connection_id: str) -> None:
        """Give a slot back (idempotent)."""


class LocalSlots:
    """Slots counted in this process."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._held: dict[str, set[str]] = {}

    async def acquire(self, user_id: str, connection_id: str) -> bool:
        """Take a slot if one is free."""
        held = self._held.setdefault(user_id, set())
        if len(held) >= self.per_user:
            return False
        held.add(connection_id)
        return True

    async def release(self, user_id: str, connection_id: str) -> None:
        """Give a slot back."""
        held = self._held.get(user_id)
        if held is not None:
            held.discard(connection_id)
            if not held:
                del self._held[user_id]
