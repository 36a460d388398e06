"""Moderation: operators disqualify and reinstate users, adjust an entry, remove one entry or wipe a
period, each act kept in the audit record with operator and reason (app/storage/moderation.py).

A disqualified user keeps their rows in the database; the rank indexes exclude them (taken off and
kept off in one step, so that an award committed just before and placed just after lands nowhere),
and every rebuild reads past them. Reinstating puts their entries back as they are kept, so every
board and kept period is as it would be had they never left. Live viewers see each change."""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec

from .api.moderation_data import (
    ActData,
    Action,
    AdjustedData,
    AdjustRequest,
    ChangeKind,
    HistoryEntry,
    HistoryQuery,
    RemovedData,
    UserHistoryData,
    UserModerationData,
    WipedData,
)
from .auth import Principal
from .boards.board import Board
from .boards.catalog import Catalog
from .clock import iso
from .errors import Disqualified, UserNotFound
from .fanout import Fanout
from .placing import Placer
from .ranking import Placement, Ranking
from .records import BoardPeriod, HistoryRow, ModerationAct
from .storage import Store

log = logging.getLogger(__name__)

_details = msgspec.json.Decoder(dict[str, object])


class Moderation:
    """Operators' acts on users and board periods (bearers of the admin role)."""

    def __init__(
        self,
        *,
        store: Store,
        ranking: Ranking,
        catalog: Catalog,
        fanout: Fanout,
        placer: Placer,
        admin_role: str,
        clock: Callable[[], int],
    ) -> None:
        self.store = store
        self.ranking = ranking
        self.catalog = catalog
        self.fanout = fanout
        self.placer = placer
        self.admin_role = admin_role
        self.clock = clock

    def _act(
        self,
        principal: Principal,
        action: Action,
        reason: str,
        *,
        user_id: str | None = None,
        board: str | None = None,
        period: str | None = None,
        amount: int | None = None,
    ) -> ModerationAct:
        """The act an operator asks for (FORBIDDEN for anyone else), dated now."""
        principal.require_role(self.admin_role)
        return ModerationAct(
            action=action,
            operator=principal.user_id,
            reason=reason,
            created_ms=self.clock(),
            user_id=user_id,
            board=board,
            period=period,
            amount=amount,
        )

    async def disqualify(self, principal: Principal, user_id: str, reason: str) -> UserModerationData:
        """Disqualify a user: off every board and kept period at once, their writes refused
        (DISQUALIFIED) until reinstated. Asked again, it is kept again and the boards checked again."""
        act = self._act(principal, "disqualify", reason, user_id=user_id)
        kept, places = await self.store.disqualify(act)
        # After the commit: an award that committed before it is on the boards by now or is
        # excluded when it gets there.
        await self.ranking.exclude(user_id, [self.catalog.where(board, period) for board, period in places])
        await self.fanout.shrank()
        log.warning("user %s disqualified by %s: %s", user_id, principal.user_id, reason)
        return UserModerationData(user_id=user_id, disqualified=True, act=act_data(kept))

    async def reinstate(self, principal: Principal, user_id: str, reason: str) -> UserModerationData:
        """Reinstate a user: their kept entries go back on every readable board period as they are
        in the database, and their writes are accepted again."""
        act = self._act(principal, "reinstate", reason, user_id=user_id)
        kept, _ = await self.store.reinstate(act)
        await self.ranking.include(user_id)
        # Read after `include`: an award that committed since the reinstatement and was placed
        # before it was excluded, and is read here.
        readable = self.catalog.shelves(self.clock())
        placements: list[Placement] = []
        for place, standing in await self.store.standings_of(user_id):
            where = self.catalog.where(place.board, place.period)
            if where in readable:
                placements.append((where, standing, readable[where]))
        await self.ranking.put_all(placements)
        await self.fanout.shrank()  # every process's viewers read their boards again
        log.warning("user %s reinstated by %s: %s", user_id, principal.user_id, reason)
        return UserModerationData(user_id=user_id, disqualified=False, act=act_data(kept))

    async def adjust(self, principal: Principal, board_id: str, user_id: str, request: AdjustRequest) -> AdjustedData:
        """Add a signed delta to a user's entry in one period (the current one by default) with a
        correction row in the history; ranks and live viewers follow as for an award. An incr board
        starts an entry the user lacks; other boards need one (NOT_FOUND)."""
        principal.require_role(self.admin_role)  # before anything about the board is told
        board = self.catalog.get(board_id)
        now = self.clock()
        period = board.period(request.period, now)
        where = board.where(period)
        act = self._act(
            principal, "adjust", request.reason, user_id=user_id, board=board.id, period=period.id, amount=request.delta
        )
        async with self.placer.in_flight.flight() as flight:  # a period's end waits for it, as for an award
            await flight.over((where,))
            corrected = await self.store.adjust(act, where, create=board.settings.operator == "incr")
            change = corrected.change
            assert change is not None  # an adjustment changes its entry
            rank = None
            if not corrected.disqualified:
                try:
                    moves = await self.placer.place(
                        user_id, corrected.username, now, [change], {where: board.expire_ms(period)}
                    )
                    rank = moves[0].rank
                except Disqualified:  # disqualified since the commit: the entry waits for a reinstatement
                    rank = None
        log.warning(
            "%s on %s/%s adjusted by %s (%+d): %s",
            user_id,
            board.id,
            period.id,
            principal.user_id,
            request.delta,
            request.reason,
        )
        return AdjustedData(
            board=board.id,
            period=period.id,
            user_id=user_id,
            previous_score=change.previous_score,
            new_score=change.new_score,
            rank=rank,
            act=act_data(corrected.act),
        )

    async def remove(
        self, principal: Principal, board_id: str, period_spec: str, user_id: str, reason: str
    ) -> RemovedData:
        """Take one user's entry off one board period (its history stays, with a correction row)."""
        principal.require_role(self.admin_role)
        board, where = self._period(board_id, period_spec)
        act = self._act(principal, "remove", reason, user_id=user_id, board=board.id, period=where.period)
        async with self.placer.in_flight.flight() as flight:
            await flight.over((where,))
            removal = await self.store.remove_entry(act, where)
            await self.ranking.take_off(where, removal.entries)
        await self.fanout.shrank()
        log.warning("%s removed from %s/%s by %s: %s", user_id, board.id, where.period, principal.user_id, reason)
        return RemovedData(
            board=board.id,
            period=where.period,
            user_id=user_id,
            removed_score=removal.act.amount or 0,
            act=act_data(removal.act),
        )

    async def wipe(self, principal: Principal, board_id: str, period_spec: str, reason: str) -> WipedData:
        """Take every entry off one board period; the act keeps each one removed."""
        principal.require_role(self.admin_role)
        board, where = self._period(board_id, period_spec)
        act = self._act(principal, "wipe", reason, board=board.id, period=where.period)
        async with self.placer.in_flight.flight() as flight:
            await flight.over((where,))
            removal = await self.store.wipe(act, where)
            await self.ranking.take_off(where, removal.entries)
        kept = removal.act
        await self.fanout.shrank()
        log.warning(
            "%s/%s wiped by %s (%s entries): %s", board.id, where.period, principal.user_id, kept.amount, reason
        )
        return WipedData(board=board.id, period=where.period, removed=kept.amount or 0, act=act_data(kept))

    async def history(self, principal: Principal, user_id: str, query: HistoryQuery) -> UserHistoryData:
        """A user's changes, newest first, one page; the acts on them; whether disqualified."""
        principal.require_role(self.admin_role)
        kept = await self.store.user_history(user_id, after=query.after, limit=query.limit)
        if kept is None:
            raise UserNotFound(details={"userId": user_id})
        more = len(kept.changes) == query.limit
        return UserHistoryData(
            user_id=kept.user_id,
            username=kept.username,
            disqualified=kept.disqualified_ms is not None,
            disqualified_at=None if kept.disqualified_ms is None else iso(kept.disqualified_ms),
            history=[_entry(row) for row in kept.changes],
            next_after=kept.changes[-1].id if more else None,
            acts=[act_data(act) for act in kept.acts],
        )

    def _period(self, board_id: str, spec: str) -> tuple[Board, BoardPeriod]:
        """A board (BOARD_NOT_FOUND) and one of its readable periods (PERIOD_NOT_FOUND)."""
        board = self.catalog.get(board_id)
        return board, board.where(board.period(spec, self.clock()))


def act_data(act: ModerationAct) -> ActData:
    """An act as the routes show it."""
    return ActData(
        id=act.id,
        action=msgspec.convert(act.action, Action),
        operator=act.operator,
        reason=act.reason,
        user_id=act.user_id,
        board=act.board,
        period=act.period,
        amount=act.amount,
        details=None if act.details is None else _details.decode(act.details),
        created_at=iso(act.created_ms),
    )


def _entry(row: HistoryRow) -> HistoryEntry:
    kind: ChangeKind = (
        "correction" if row.moderation_id is not None else "trusted" if row.service is not None else "award"
    )
    return HistoryEntry(
        id=row.id,
        kind=kind,
        board=row.board,
        period=row.period,
        action_type=row.action_type,
        action_id=row.action_id,
        service=row.service,
        act_id=row.moderation_id,
        value=row.value,
        subscore=row.subscore,
        previous_score=row.previous_score,
        new_score=row.new_score,
        created_at=iso(row.created_ms),
    )
