"""Who may open a WebSocket, decided before the upgrade: a ceiling per process, and per client
address a cap on open connections and a handshake rate."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

from ..addresses import limit_key
from ..errors import RateLimited, ServiceUnavailable
from ..limits import ConnectionSlots, Limiter
from ..tasks import Errands

# Nothing on a clock frees a connection: another one closing does. A hint to back off a while.
FULL_RETRY_SECONDS = 10


class Admission:
    """Admits a connection while this process has room and its client address has a slot and
    handshakes to spare; every admitted connection holds its places until it ends."""

    def __init__(self, *, per_process: int, ip_slots: ConnectionSlots, handshakes: Limiter) -> None:
        self.per_process = per_process
        self.ip_slots = ip_slots
        self.handshakes = handshakes
        self.open = 0  # connections admitted in this process and not yet ended
        self.refused_full = 0  # handshakes refused because this process was full (503)
        self.refused_address = 0  # handshakes refused because their address held its connections (429)
        self._releases = Errands("giving a WebSocket slot back (it expires by itself)")

    @contextlib.asynccontextmanager
    async def admitted(self, address: str) -> AsyncIterator[None]:
        """Hold a connection's places for the block; 503 when the process is full, 429 when the
        address is over its handshake rate or connection cap."""
        if self.open >= self.per_process:
            self.refused_full += 1
            raise ServiceUnavailable(
                "This server has no room for another live connection",
                headers={"Retry-After": str(FULL_RETRY_SECONDS)},
            )
        key = limit_key(address)
        connection_id = secrets.token_hex(8)
        self.open += 1
        try:
            await self.handshakes.check(key)  # every handshake counts, admitted or not
            if not await self.ip_slots.acquire(key, connection_id):
                self.refused_address += 1
                raise RateLimited(FULL_RETRY_SECONDS, "Too many live connections from this address")
        except BaseException:
            self.open -= 1
            raise
        try:
            yield
        finally:
            self.open -= 1
            # In a task: this may run while the handler is being cancelled (shutdown, a client
            # gone), and an await cut short there would keep the slot until it expires.
            self._releases.start(self.ip_slots.release(key, connection_id))

    async def released(self) -> None:
        """Wait until every slot given back so far is free everywhere (shutdown, tests)."""
        await self._releases.finished()
