"""The audit chain's head as operators see it on their page: what `run.py audit anchor` prints."""

from __future__ import annotations

import msgspec

from ..auth import Principal
from ..storage import Store


class ChainHead(msgspec.Struct, frozen=True, kw_only=True):
    """The last sealed entry: its position and hash (seq 0 and the genesis hash before any)."""

    seq: int
    hash: str


class AuditHead:
    """Reads the chain's head for bearers of the admin role."""

    def __init__(self, store: Store, admin_role: str) -> None:
        self.store = store
        self.admin_role = admin_role

    async def head(self, principal: Principal) -> ChainHead:
        """The head now; FORBIDDEN without the admin role."""
        principal.require_role(self.admin_role)
        seq, hash_ = await self.store.audit_head()
        return ChainHead(seq=seq, hash=hash_)
