"""A user's personal data: exported whole, or erased (GDPR). An erasure takes the user off every
board first (rank indexes, then the database), keeps their history under a pseudonym, and has
every process show its viewers the boards again."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import msgspec

from .api.notice_data import Notification
from .api.personal_data import (
    ErasedData,
    ExportData,
    ExportedAttestation,
    ExportedAward,
    ExportedChange,
    ExportedCompletion,
    ExportedDecision,
    ExportedEntry,
    ExportedHeld,
    ExportedToken,
    ExportedUser,
)
from .auth import Principal
from .boards.catalog import Catalog
from .clock import iso
from .errors import UserNotFound
from .fanout import Fanout
from .moderation import act_data
from .overtakes import OVERTAKEN, overtake_of
from .ranking import Ranking
from .records import Notice
from .storage import Store
from .storage.moderation import act_of

_object = msgspec.json.Decoder(dict[str, object])
_rule_names = msgspec.json.Decoder(list[str])  # held_awards.rules: a JSON list of the rules' names


def _json(text: str | None) -> dict[str, object] | None:
    return None if text is None else _object.decode(text)


def _iso(ms: int | None) -> str | None:
    return None if ms is None else iso(ms)


class PersonalData:
    """Export and erasure of one user's data."""

    def __init__(
        self,
        *,
        store: Store,
        ranking: Ranking,
        catalog: Catalog,
        fanout: Fanout,
        admin_role: str,
        clock: Callable[[], int],
    ) -> None:
        self.store = store
        self.ranking = ranking
        self.catalog = catalog
        self.fanout = fanout
        self.admin_role = admin_role
        self.clock = clock

    async def export(self, user_id: str) -> ExportData:
        """Everything kept about a user; USER_NOT_FOUND when nothing is."""
        kept = await self.store.personal_data(user_id)
        if kept is None:
            raise UserNotFound(details={"userId": user_id})
        user = None
        if kept.user is not None:
            uid, username, created, updated = kept.user
            user = ExportedUser(user_id=uid, username=username, created_at=iso(created), updated_at=iso(updated))
        return ExportData(
            user=user,
            entries=[
                ExportedEntry(board=b, period=p, score=sc, subscore=sub, updated_at=iso(at), metadata=_json(meta))
                for b, p, sc, sub, at, meta in kept.entries
            ],
            awards=[
                ExportedAward(
                    id=i,
                    action_type=t,
                    action_id=a,
                    score_change=change,
                    previous_score=prev,
                    new_score=new,
                    created_at=iso(at),
                )
                for i, t, a, change, prev, new, at in kept.awards
            ],
            history=[
                ExportedChange(
                    id=i,
                    board=b,
                    period=p,
                    award_id=award,
                    service=service,
                    value=value,
                    subscore=sub,
                    previous_score=prev,
                    new_score=new,
                    metadata=_json(meta),
                    created_at=iso(at),
                )
                for i, b, p, award, service, value, sub, prev, new, meta, at in kept.changes
            ],
            tokens=[
                ExportedToken(
                    action_type=t,
                    action_id=a,
                    score_increment=worth,
                    issued_at=iso(issued),
                    expires_at=iso(expires),
                    used_at=_iso(used),
                )
                for t, a, worth, issued, expires, used in kept.tokens
            ],
            notifications=[
                Notification(
                    id=i,
                    type=OVERTAKEN,
                    created_at=iso(at),
                    data=overtake_of(Notice(id=i, user_id=uid, type=kind, data=data, created_ms=at)),
                )
                for i, kind, data, at in kept.notices
            ],
            attestations=[
                ExportedAttestation(action_id=a, service=service, created_at=iso(at))
                for a, service, at in kept.attestations
            ],
            held=[
                ExportedHeld(
                    id=i,
                    action_type=t,
                    action_id=a,
                    score=score,
                    status=status,
                    reason=reason,
                    created_at=iso(at),
                    decided_at=_iso(decided),
                    rules=_rule_names.decode(rules),
                )
                for i, t, a, score, status, reason, at, decided, rules in kept.held
            ],
            completed_actions=[ExportedCompletion(action_id=a, completed_at=iso(at)) for a, at in kept.completed],
            acts=[act_data(act_of(row)) for row in kept.acts],
            decisions=[
                ExportedDecision(held_id=i, status=status, reason=reason, decided_at=_iso(decided))
                for i, status, reason, decided in kept.decisions
            ],
        )

    async def inspect(self, principal: Principal, user_id: str) -> ExportData:
        """An operator's view of everything kept about a user (the operator page's user page)."""
        principal.require_role(self.admin_role)
        return await self.export(user_id)

    async def erase_self(self, principal: Principal) -> ErasedData:
        """DELETE /users/me: the caller's erasure."""
        return await self.erase(principal.user_id)

    async def erase_user(self, principal: Principal, user_id: str) -> ErasedData:
        """An operator's erasure of another user."""
        principal.require_role(self.admin_role)
        return await self.erase(user_id)

    async def erase(self, user_id: str) -> ErasedData:
        """Take the user off every board (the rank indexes first: if they cannot be written, nothing
        is erased and the erasure can be asked again), then erase their rows under a pseudonym;
        USER_NOT_FOUND for a user nothing is kept about."""
        kept = await self.store.personal_data(user_id)
        if kept is None:
            raise UserNotFound(details={"userId": user_id})
        # Every readable period, not only those with an entry: an entry an operator removed lately
        # is marked under the user's id (see Ranking.take_off).
        entered = [self.catalog.where(board, period) for board, period, *_ in kept.entries]
        await self.ranking.remove(user_id, list(dict.fromkeys([*entered, *self.catalog.shelves(self.clock())])))
        pseudonym = "erased-" + secrets.token_hex(12)
        shelves = await self.store.erase(user_id, pseudonym, self.clock())
        # An entry written between the two steps is taken off too.
        await self.ranking.remove(user_id, [self.catalog.where(board, period) for board, period in shelves])
        await self.fanout.shrank()
        return ErasedData(erased=True)
