"""Messages to one user's connections after an award: `score_update` to the user who scored,
`rank_change` to them and to each connected user they overtook."""

from __future__ import annotations

from ..errors import ServiceUnavailable
from ..ranking import Ranking
from ..records import AwardEvent
from ..tasks import Errands, stop_if_cancelled
from .connections import Connections
from .messages import RankChange, RankMove, ScoreChange, ScoreUpdate, ServerMessage, encode, text_frame


class Notices:
    """Tells connected users about their own score and rank. Only connected users on the board
    are watched for being overtaken."""

    def __init__(self, ranking: Ranking, registry: Connections, errands: Errands) -> None:
        self.ranking = ranking
        # The registry's users and their connections: the dict itself (never replaced), read on
        # every award.
        self.by_user = registry.by_user
        # Connected users who are on the board: only they can be overtaken. Viewers who never
        # scored cost nothing per award (at 1,000 awards/s, asking the board about 1,000
        # connected viewers each time took the whole core).
        self._on_board: set[str] = set()
        self._errands = errands

    def watched_users(self) -> frozenset[str]:
        """The connected users on the board, who are told when someone overtakes them (read-only)."""
        return frozenset(self._on_board)

    async def watch(self, user_id: str) -> None:
        """Start watching a user just bound to a connection, if they are on the board."""
        if user_id in self._on_board:
            return
        try:
            ranked = await self.ranking.position(user_id) is not None
        except ServiceUnavailable:
            stop_if_cancelled()
            ranked = True  # unknown: better a board lookup too many than a rank_change too few
        if ranked and user_id in self.by_user:  # still connected after the lookup
            self._on_board.add(user_id)

    def unwatch(self, user_id: str) -> None:
        """Stop watching a user whose last connection went away."""
        self._on_board.discard(user_id)

    def on_award(self, event: AwardEvent) -> None:
        """Score and rank messages to the users concerned, now."""
        if not self.by_user:
            return
        award = event.award
        if award.user_id in self.by_user:
            self._on_board.add(award.user_id)
        self._to_user(
            award.user_id,
            ScoreUpdate(
                data=ScoreChange(
                    user_id=award.user_id,
                    previous_score=award.previous_score,
                    new_score=award.new_score,
                    score_increment=award.score_increment,
                    new_rank=event.rank,
                    previous_rank=event.previous_rank,
                )
            ),
        )
        if event.previous_rank is not None and event.previous_rank != event.rank:
            self._rank_change(award.user_id, event.previous_rank, event.rank, award.new_score)
        if event.previous_rank is None or event.previous_rank > event.rank:
            self._errands.start(self._tell_overtaken(award.user_id, event.rank, event.previous_rank))

    async def _tell_overtaken(self, winner: str, rank: int, previous: int | None) -> None:
        # Everyone the winner passed moved down one place: now at ranks rank+1 .. previous
        # (to the end of the board on a first award). Walk whichever is smaller: that rank
        # range, or the connected users on the board.
        candidates = self._on_board - {winner}
        if not candidates:
            return
        last = previous if previous is not None else await self.ranking.size()
        if last <= rank:
            return
        if last - rank <= len(candidates):
            moved = await self.ranking.ranked(rank + 1, last)
        else:
            found = await self.ranking.ranks(list(candidates))
            moved = [(r, user, score) for user, (r, score) in found.items() if rank < r <= last]
        for r, user_id, score in moved:
            if user_id != winner and user_id in self.by_user:
                self._rank_change(user_id, r - 1, r, score)

    def _rank_change(self, user_id: str, previous: int, rank: int, score: int) -> None:
        self._to_user(
            user_id, RankChange(data=RankMove(user_id=user_id, previous_rank=previous, new_rank=rank, score=score))
        )

    def _to_user(self, user_id: str, message: ServerMessage) -> None:
        owned = self.by_user.get(user_id)
        if owned:
            frame = text_frame(encode(message))
            for conn in list(owned):
                conn.send_frame(frame)
