"""Messages to one user's connections: after a write, `score_update` to the user who scored and
`rank_change` to them and to each connected user they overtook, one message per board; and the
user's kept notices (`overtaken`), live from any process and replayed on the notifications channel,
each once per connection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..boards.catalog import Catalog
from ..errors import ServiceUnavailable
from ..overtakes import overtake_of
from ..ranking import Ranking
from ..records import AwardEvent, BoardPeriod, Notice
from ..tasks import Errands, stop_if_cancelled
from .connections import Connection, Connections, Delivered
from .messages import (
    Overtaken,
    RankChange,
    RankMove,
    ScoreChange,
    ScoreUpdate,
    ServerMessage,
    encode,
    text_frame,
)

KeptNotices = Callable[[str, int], Awaitable[list[Notice]]]  # a user's kept notices after an id


class Notices:
    """Tells connected users about their own scores and ranks. Only connected users on some board
    are watched for being overtaken."""

    def __init__(
        self,
        ranking: Ranking,
        registry: Connections,
        errands: Errands,
        catalog: Catalog,
        clock: Callable[[], int],
        *,
        kept: KeptNotices,
    ) -> None:
        self.ranking = ranking
        self.kept = kept
        self.catalog = catalog
        self.clock = clock
        # The registry's users and their connections: the dict itself (never replaced), read on
        # every award.
        self.by_user = registry.by_user
        # Connected users who are on a board: only they can be overtaken. Viewers who never
        # scored cost nothing per award (at 1,000 awards/s, asking the board about 1,000
        # connected viewers each time took the whole core).
        self._on_board: set[str] = set()
        self._looking: set[str] = set()  # users being looked up by `watch`, with no award since
        self._errands = errands

    def watched_users(self) -> frozenset[str]:
        """The connected users on a board, who are told when someone overtakes them (read-only)."""
        return frozenset(self._on_board)

    async def watch(self, user_id: str) -> None:
        """Watch a user just bound to a connection: at once, so that no rank change is missed while
        the boards are looked up (their greeting has gone out), and no longer once they are found
        on none (unless they scored meanwhile)."""
        if user_id in self._on_board:
            return
        self._on_board.add(user_id)
        self._looking.add(user_id)
        now = self.clock()
        try:
            ranked = False
            for board in self.catalog.listed():
                if await self.ranking.position(board.where(board.current(now)), user_id) is not None:
                    ranked = True
                    break
        except ServiceUnavailable:
            stop_if_cancelled()
            ranked = True  # unknown: better a board lookup too many than a rank_change too few
        finally:
            unchanged = user_id in self._looking  # no award of theirs came meanwhile
            self._looking.discard(user_id)
        if not ranked and unchanged:
            self._on_board.discard(user_id)

    def unwatch(self, user_id: str) -> None:
        """Stop watching a user whose last connection went away."""
        self._on_board.discard(user_id)

    def on_award(self, event: AwardEvent) -> None:
        """Score and rank messages to the users concerned, now."""
        if not self.by_user:
            return
        user_id = event.user_id
        if user_id in self.by_user:
            self._on_board.add(user_id)
            self._looking.discard(user_id)
        for move in event.moves:
            change, where = move.change, move.change.where
            previous_score = change.previous_score or 0
            self._to_user(
                user_id,
                ScoreUpdate(
                    data=ScoreChange(
                        board=where.board,
                        period=where.period,
                        user_id=user_id,
                        previous_score=previous_score,
                        new_score=change.new_score,
                        score_increment=change.new_score - previous_score,
                        new_rank=move.rank,
                        previous_rank=move.previous_rank,
                    )
                ),
            )
            if move.previous_rank is not None and move.previous_rank != move.rank:
                self._rank_change(where, user_id, move.previous_rank, move.rank, change.new_score)
            if move.previous_rank is None or move.previous_rank > move.rank:
                self._errands.start(self._tell_overtaken(where, user_id, move.rank, move.previous_rank))

    async def _tell_overtaken(self, where: BoardPeriod, winner: str, rank: int, previous: int | None) -> None:
        # Everyone the winner passed moved down one place: now at ranks rank+1 .. previous
        # (to the end of the board on a first award). Walk whichever is smaller: that rank
        # range, or the connected users on the board.
        candidates = self._on_board - {winner}
        if not candidates:
            return
        last = previous if previous is not None else await self.ranking.size(where)
        if last <= rank:
            return
        if last - rank <= len(candidates):
            moved = await self.ranking.ranked(where, rank + 1, last)
        else:
            found = await self.ranking.ranks(where, list(candidates))
            moved = [(r, user, score) for user, (r, score) in found.items() if rank < r <= last]
        for r, user_id, score in moved:
            if user_id != winner and user_id in self.by_user:
                self._rank_change(where, user_id, r - 1, r, score)

    def _rank_change(self, where: BoardPeriod, user_id: str, previous: int, rank: int, score: int) -> None:
        move = RankMove(
            board=where.board, period=where.period, user_id=user_id, previous_rank=previous, new_rank=rank, score=score
        )
        self._to_user(user_id, RankChange(data=move))

    def _to_user(self, user_id: str, message: ServerMessage) -> None:
        owned = self.by_user.get(user_id)
        if owned:
            frame = text_frame(encode(message))
            for conn in list(owned):
                conn.send_frame(frame)

    def deliver(self, notices: list[Notice]) -> None:
        """Send kept notices to their users' connections here (held back where a replay is being
        read), each once per connection."""
        for notice in notices:
            owned = self.by_user.get(notice.user_id)
            if owned:
                frame = text_frame(encode(Overtaken(id=notice.id, data=overtake_of(notice))))
                for conn in list(owned):
                    _send_notice(conn, notice.id, frame)

    async def replay(self, conn: Connection, user_id: str, after: int) -> None:
        """Send the user's kept notices after `after` that the connection was not sent yet, then
        those that arrived meanwhile; SERVICE_UNAVAILABLE when they cannot be read (the ones that
        arrived meanwhile are sent all the same)."""
        delivered = conn.notices = conn.notices or Delivered()
        if delivered.held is not None:  # a replay is being read already: it sends what this would
            return
        delivered.held = []
        try:
            for notice in await self.kept(user_id, after):
                if delivered.first_time(notice.id):
                    conn.send(Overtaken(id=notice.id, data=overtake_of(notice)))
        finally:
            held, delivered.held = delivered.held, None
            for notice_id, frame in held:
                _send_notice(conn, notice_id, frame)


def _send_notice(conn: Connection, notice_id: int, frame: bytes) -> None:
    delivered = conn.notices = conn.notices or Delivered()
    if delivered.held is not None:
        delivered.held.append((notice_id, frame))
    elif delivered.first_time(notice_id):
        conn.send_frame(frame)
