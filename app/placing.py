"""Placing committed writes: each entry change on its rank index, the answer caches told, every
process's live side told. Awards and trusted writes go through this one step."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from .api.award_data import AwardBoard
from .errors import Disqualified, ServiceUnavailable
from .fanout import Fanout
from .flights import InFlight
from .ranking import Ranking
from .records import AwardEvent, BoardPeriod, EntryChange, Move, Standing
from .top_cache import TopCache
from .tracing import Spans

log = logging.getLogger(__name__)


async def best_effort(what: str, step: Awaitable[object]) -> None:
    """Run a step that follows a commit and must not turn it into a failure."""
    try:
        await step
    except ServiceUnavailable:
        log.warning("%s skipped: a backing service is unavailable", what)


def landed(moves: list[Move]) -> list[AwardBoard]:
    """Where a placed write landed, board by board, as its answer shows it."""
    return [
        AwardBoard(
            board=m.change.where.board,
            period=m.change.where.period,
            previous_score=m.change.previous_score or 0,
            new_score=m.change.new_score,
            rank=m.rank,
        )
        for m in moves
    ]


class Placer:
    """Puts committed entry changes on the rank indexes and announces them."""

    def __init__(
        self,
        ranking: Ranking,
        fanout: Fanout,
        tops: TopCache,
        spans: Spans | None = None,
        *,
        placed: Callable[[AwardEvent], None] | None = None,
        in_flight: InFlight,
    ) -> None:
        self.ranking = ranking
        self.fanout = fanout
        self.tops = tops
        self.span = spans or Spans(None)  # the steps as trace spans, when tracing is on
        self.placed = placed  # told of every placed write, after it is announced (the overtakes)
        self.in_flight = in_flight  # the writes on their way here, per period

    async def place(
        self,
        user_id: str,
        username: str,
        at_ms: int,
        changes: list[EntryChange],
        expires: Mapping[BoardPeriod, int | None],
    ) -> list[Move]:
        """Place every change that changed its entry (in one step: in the Redis modes one script
        call for all); the moves, in the order of `changes`. SERVICE_UNAVAILABLE (committed, the
        boards catch up from the database) when an index cannot be written; DISQUALIFIED (committed
        before the user's disqualification, placed after it: on no board until reinstated) when
        the indexes exclude the user."""
        placed = [c for c in changes if c.changed]
        try:
            with self.span("award.ranking"):
                ranks = await self._put(user_id, username, at_ms, placed, expires)
        except ServiceUnavailable:
            self.tops.changed()
            raise ServiceUnavailable(
                "The write is recorded; the leaderboard is catching up", details={"awarded": True}
            ) from None
        if any(rank == 0 for _, rank in ranks):
            raise Disqualified(
                "The write is recorded, but the user was disqualified: it shows on no board until they are reinstated",
                details={"awarded": True, "userId": user_id},
            )
        # A negative rank: the entry was removed by an operator after this write committed. The
        # answer shows where it would have been (as if placed, then removed); nobody else is told.
        moves = [
            Move(change=c, previous_rank=previous, rank=abs(rank))
            for c, (previous, rank) in zip(placed, ranks, strict=True)
        ]
        shown = [move for move, (_, rank) in zip(moves, ranks, strict=True) if rank > 0]
        for move in shown:  # at once: this write's own answer shows it
            self.tops.moved(move.change.where, move.previous_rank, move.rank)
        if shown:
            event = AwardEvent(user_id=user_id, username=username, at_ms=at_ms, moves=shown)
            with self.span("award.fanout"):
                await best_effort("live update", self.fanout.publish(event))
            if self.placed is not None:
                self.placed(event)
        return moves

    async def _put(
        self,
        user_id: str,
        username: str,
        at_ms: int,
        placed: list[EntryChange],
        expires: Mapping[BoardPeriod, int | None],
    ) -> list[tuple[int | None, int]]:
        return await self.ranking.put_all(
            [(c.where, Standing.of(user_id, username, c, at_ms), expires.get(c.where)) for c in placed]
        )
