"""Reads of many boards: the catalog, tops and rank ranges of any kept period, the users around one
user, a list of users (friends), the periods of a board, one user's standing everywhere. Each is
O(log n + k) on the rank index of its board period."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec

from ..api.board_data import (
    AroundData,
    BoardData,
    BoardDetail,
    BoardsData,
    BoardTopData,
    LookupData,
    PeriodData,
    PeriodEntry,
    PeriodsData,
    RankedEntry,
    RanksData,
    UserBoard,
    UserBoardsData,
)
from ..clock import iso
from ..errors import UserNotFound
from ..ranking import Ranking, last_change, percentile
from ..records import Position, Standing
from ..storage import Store
from ..top_cache import TopAnswer, TopCache, encoded
from .board import Board
from .catalog import Catalog
from .periods import Period


def period_data(period: Period) -> PeriodData:
    """A period as the API shows it."""
    return PeriodData(
        id=period.id,
        starts_at=None if period.starts_ms is None else iso(period.starts_ms),
        ends_at=None if period.ends_ms is None else iso(period.ends_ms),
    )


def board_data(board: Board, now_ms: int) -> BoardData:
    """A board as the API lists it, with its current period."""
    s = board.settings
    return BoardData(
        id=board.id,
        title=board.title,
        order=s.order,
        operator=s.operator,
        reset=s.reset,
        timezone=s.timezone,
        keep_periods=s.keep_periods,
        format=s.format,
        period=period_data(board.current(now_ms)),
    )


def ranked_entry(rank: int, s: Standing) -> RankedEntry:
    """One ranked standing as the board routes show it."""
    return RankedEntry(
        rank=rank,
        user_id=s.user_id,
        username=s.username,
        score=s.score,
        subscore=s.subscore,
        metadata=None if s.metadata is None else msgspec.Raw(s.metadata.encode()),
        last_updated=iso(s.updated_ms),
    )


def _entries(places: list[tuple[int, Standing]]) -> list[RankedEntry]:
    return [ranked_entry(rank, s) for rank, s in places]


class BoardReads:
    """Everything the public board routes read."""

    def __init__(self, catalog: Catalog, ranking: Ranking, store: Store, tops: TopCache, clock: Callable[[], int]):
        self.catalog = catalog
        self.ranking = ranking
        self.store = store
        self.tops = tops
        self.clock = clock

    def boards(self) -> BoardsData:
        """Every board in use, the default first."""
        now = self.clock()
        return BoardsData(boards=[board_data(b, now) for b in self.catalog.listed()])

    async def board(self, board_id: str) -> BoardDetail:
        """One board, with how many entries its current period has."""
        board, now = self.catalog.get(board_id), self.clock()
        data = board_data(board, now)
        size = await self.ranking.size(board.where(board.current(now)))
        return BoardDetail(**msgspec.structs.asdict(data), entries=size)

    async def top(self, board_id: str, period: str, limit: int) -> TopAnswer:
        """The top of a board period, rendered once per change of what it shows."""
        board = self.catalog.get(board_id)
        where = board.where(board.period(period, self.clock()))
        version = self.tops.version(where)
        key = (where, limit, "board")
        answer = self.tops.get(key, version)
        if answer is None:
            top = await self.ranking.top(where, limit)
            data = BoardTopData(
                board=board.id,
                period=where.period,
                leaderboard=_entries(top),
                updated_at=iso(last_change(top) or self.clock()),
            )
            answer = encoded(data)
            if top:  # an empty board's updatedAt is "now": not kept
                self.tops.keep(key, version, answer)
        return answer

    async def ranks(self, board_id: str, first: int, limit: int, period: str) -> RanksData:
        """The entries at ranks first .. first+limit-1, and how many there are."""
        board = self.catalog.get(board_id)
        where = board.where(board.period(period, self.clock()))
        places, total = await self.ranking.page(where, first, first + limit - 1)
        return RanksData(
            board=board.id,
            period=where.period,
            leaderboard=_entries(places),
            updated_at=iso(last_change(places) or self.clock()),
            total=total,
        )

    async def around(self, board_id: str, user_id: str, radius: int, period: str) -> AroundData:
        """A user's rank and the entries from rank-radius to rank+radius (none when not on the board)."""
        board = self.catalog.get(board_id)
        where = board.where(board.period(period, self.clock()))
        position, places, total = await self.ranking.around(where, user_id, radius)
        return AroundData(
            board=board.id,
            period=where.period,
            rank=None if position is None else position.rank,
            entries=_entries(places),
            total=total,
        )

    async def lookup(self, board_id: str, user_ids: list[str], period: str) -> LookupData:
        """Those of these users on the board, by rank."""
        board = self.catalog.get(board_id)
        where = board.where(board.period(period, self.clock()))
        found = await self.ranking.positions(where, user_ids)
        return LookupData(
            board=board.id, period=where.period, entries=[ranked_entry(p.rank, p.standing) for p in found]
        )

    async def periods(self, board_id: str) -> PeriodsData:
        """The current period and the kept ones that have entries, newest first."""
        board = self.catalog.get(board_id)
        kept = board.kept(self.clock())
        sizes = await asyncio.gather(*(self.ranking.size(board.where(p)) for p in kept))
        listed = []
        for i, (period, size) in enumerate(zip(kept, sizes, strict=True)):
            if i == 0 or size:
                data = period_data(period)
                listed.append(PeriodEntry(**msgspec.structs.asdict(data), entries=size))
        return PeriodsData(board=board.id, periods=listed)

    async def user_boards(self, user_id: str) -> UserBoardsData:
        """The user's standing in the current period of every board they are on."""
        now = self.clock()
        boards = [(board, board.where(board.current(now))) for board in self.catalog.listed()]
        positions = await asyncio.gather(*(self.ranking.position(where, user_id) for _, where in boards))
        found: list[tuple[Board, str, Position]] = [
            (board, where.period, position)
            for (board, where), position in zip(boards, positions, strict=True)
            if position is not None
        ]
        if not found and await self.store.user(user_id) is None:
            raise UserNotFound(details={"userId": user_id})
        return UserBoardsData(
            user_id=user_id,
            boards=[
                UserBoard(
                    board=board.id,
                    period=period,
                    score=p.standing.score,
                    rank=p.rank,
                    percentile=percentile(p.rank, p.size),
                )
                for board, period, p in found
            ],
        )
