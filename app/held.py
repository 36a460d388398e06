"""Cheat quarantine: awards a cheat rule held (`[actions.X] hold_over_per_hour`, `hold_over`,
`hold_within_s`, `max_score_per_hour`, `velocity`), listed for operators with the rules that held
them, who approve one (it lands on its boards as an award does) or reject it, once. The rules are
checked inside the award's transaction (app/storage/rules.py)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import msgspec

from .api.award_data import AwardBoard
from .api.held_data import HeldAwardData, HeldBoard, HeldListData, HeldQuery, HeldStatus
from .auth import Principal
from .boards.catalog import Catalog
from .clock import iso
from .placing import Placer, landed
from .records import Backoff, BoardPeriod, Decision, HeldAward, HoldRules, Move, Velocity
from .settings import ActionSettings, LimitSettings
from .storage import Store

log = logging.getLogger(__name__)


class HeldAwards:
    """Operators' view and decisions of held awards (bearers of the admin role)."""

    def __init__(
        self, *, store: Store, catalog: Catalog, placer: Placer, admin_role: str, clock: Callable[[], int]
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.placer = placer
        self.admin_role = admin_role
        self.clock = clock

    async def list(self, principal: Principal, query: HeldQuery) -> HeldListData:
        """Held awards of a status, oldest first, one page."""
        principal.require_role(self.admin_role)
        held = await self.store.held(status=query.status, after=query.after, limit=query.limit)
        more = len(held) == query.limit
        return HeldListData(held=[_data(h) for h in held], next_after=held[-1].id if more else None)

    async def status(self, principal: Principal, held_id: int) -> str | None:
        """Whether a held award is pending, approved or rejected; None when there is no such id."""
        principal.require_role(self.admin_role)
        held = await self.store.held_award(held_id)
        return None if held is None else held.status

    async def approve(self, principal: Principal, held_id: int, reason: str) -> HeldAwardData:
        """Land a pending held award on its boards (see `landing`), ranks and live updates included."""
        principal.require_role(self.admin_role)
        kept = await self.store.held_award(held_id)
        now = self.clock()  # after the read: the periods it lands in are those of now
        expires = self.landing(kept.boards, now) if kept is not None else {}
        # Decided in the store, which refuses an unknown or decided id whatever this read found.
        decision = Decision(
            held_id=held_id, approve=True, operator=principal.user_id, reason=reason, now_ms=now, boards=tuple(expires)
        )
        async with self.placer.in_flight.flight() as flight:  # a period's end waits for it, as for an award
            await flight.over(expires)
            held, award = await self.store.decide(decision)
            moves: list[Move] = []
            if award is not None and award.changes:
                moves = await self.placer.place(award.user_id, award.username, now, award.changes, expires)
        log.warning("held award %s approved by %s: %s", held_id, principal.user_id, reason)
        return _data(held, landed(moves))

    async def reject(self, principal: Principal, held_id: int, reason: str) -> HeldAwardData:
        """Decide that a pending held award never lands; no board changes."""
        principal.require_role(self.admin_role)
        decision = Decision(
            held_id=held_id, approve=False, operator=principal.user_id, reason=reason, now_ms=self.clock()
        )
        held, _ = await self.store.decide(decision)
        log.warning("held award %s rejected by %s: %s", held_id, principal.user_id, reason)
        return _data(held)

    def landing(self, boards: tuple[BoardPeriod, ...], now_ms: int) -> dict[BoardPeriod, int | None]:
        """Where an approval lands, and when each period expires: each board's period of the hold
        while the board still keeps it, else its current one. Boards retired since, or no longer
        taking awards, are left out."""
        landing: dict[BoardPeriod, int | None] = {}
        for held in boards:
            board = self.catalog.find(held.board)
            if board is None or board.settings.operator != "incr":
                continue
            kept = {p.id: p for p in board.kept(now_ms)}
            period = kept.get(held.period) or board.current(now_ms)
            landing[board.where(period)] = board.expire_ms(period)
        return landing


def _data(held: HeldAward, landed: list[AwardBoard] | None = None) -> HeldAwardData:
    return HeldAwardData(
        id=held.id,
        user_id=held.user_id,
        action_type=held.action_type,
        action_id=held.action_id,
        score=held.score,
        boards=[HeldBoard(board=b.board, period=b.period) for b in held.boards],
        status=msgspec.convert(held.status, HeldStatus),
        created_at=iso(held.created_ms),
        decided_by=held.decided_by,
        reason=held.reason,
        decided_at=None if held.decided_ms is None else iso(held.decided_ms),
        landed=landed or [],
        rules=list(held.rules),
    )


def held_backoff(limits: LimitSettings) -> Backoff | None:
    """Repeat offenders' back-off as the award's transaction checks it; None: off."""
    if not limits.held_backoff_seconds:
        return None
    return Backoff(base_ms=limits.held_backoff_seconds * 1000, max_ms=limits.held_backoff_max_seconds * 1000)


def hold_rules(action: ActionSettings) -> HoldRules | None:
    """The action's cheat rules as the award's transaction checks them; None: it has none."""
    over, velocity = action.hold_over, action.velocity
    rules = HoldRules(
        over_per_hour=action.hold_over_per_hour,
        over=None if over is None else (over.count, over.window_s * 1000),
        within_ms=None if action.hold_within_s is None else math.ceil(action.hold_within_s * 1000),
        max_score_per_hour=action.max_score_per_hour,
        velocity=None
        if velocity is None
        else Velocity(
            window_ms=velocity.window_s * 1000,
            windows=velocity.windows,
            min_samples=velocity.min_samples,
            z=velocity.z,
        ),
    )
    return None if rules == HoldRules() else rules
