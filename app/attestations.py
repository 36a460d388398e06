"""Attestations: a trusted game server vouching that a player did an action. An action marked
`attest = true` is awarded only once its attestation is held; the award spends it in its own
transaction (app/storage/operations.py), and one no award spends is forgotten after
`limits.idempotency_hours`."""

from __future__ import annotations

from collections.abc import Callable

from .api.trusted_data import AttestData, AttestRequest
from .boards.trusted import Service
from .clock import iso
from .settings import ACTIONS_ATTEST
from .storage import Store


class Attestations:
    """Records trusted servers' attestations of users' actions."""

    def __init__(self, store: Store, clock: Callable[[], int]) -> None:
        self.store = store
        self.clock = clock

    async def attest(self, service: Service, action_id: str, request: AttestRequest) -> AttestData:
        """Attest the user's action, once: a second attest of it answers the first one's time and
        changes nothing. FORBIDDEN for a key without the scope actions:attest."""
        service.check(ACTIONS_ATTEST)
        made_ms = await self.store.attest(request.user_id, action_id, service.name, self.clock())
        return AttestData(action_id=action_id, user_id=request.user_id, attested_at=iso(made_ms))
