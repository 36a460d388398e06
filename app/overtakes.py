"""Overtakes: whom a committed write passed on each board, told as `overtaken` notices, kept for the
users (GET /users/me/notifications, the notifications channel's replay) and sent to their
connections in every process.

The work is bounded per write and never holds up its answer: it runs after the answer's placing,
in the background, and tells at most MAX_PASSED users in all, however many boards it moved on (the
nearest ones passed: those now just behind the writer). Beyond that bound the others are not told: a
jump past 5,000 players tells the 100 it ended just ahead of, and a write passing 80 players on each
of three boards tells the 100 nearest of those 240. While MAX_PENDING writes are still being worked
on, the notices of a new one are skipped (counted in `skipped`, logged at most every SKIP_LOG_MS):
a burst cannot pile up work without end."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Final

import msgspec

from .api.notice_data import Notification, NotificationsData, Overtake, Passer
from .batching import TurnBatch
from .clock import iso
from .errors import ServiceUnavailable
from .fanout import Fanout
from .ranking import Ranking
from .records import AwardEvent, Move, Notice, NoticeDraft
from .storage import Store
from .tasks import Errands

log = logging.getLogger(__name__)

OVERTAKEN: Final = "overtaken"
MAX_PASSED = 100  # notices per write, on all its boards: the nearest it passed
KEEP = 100  # notices kept per user, the newest
KEEP_MS = 7 * 86_400_000  # and for how long
# A user given this many notices (by this process) since their last trim is trimmed right after the
# write that keeps them (one store write for the loop turn's, about as many rows as it kept); the
# others in the minute's purge, TRIM_CHUNK at a time. Trimmed only once a minute, users passed 40
# times a second had thousands each, and SQLite's one writer spent seconds on a chunk while every
# award waited.
TRIM_AFTER = 50
TRIM_CHUNK = 20  # users whose old notices one store write of the purge deletes: < TRIM_AFTER each
MAX_PENDING = 1000  # writes whose notices are being worked on at once; beyond, a write's are skipped
# Skipped writes are logged at most this often, with how many since the last line: a line per
# write logged 17,549 of them in one minute of overload, adding to it.
SKIP_LOG_MS = 10_000

_overtake = msgspec.json.Decoder(Overtake)
_encoder = msgspec.json.Encoder()


def overtake_of(notice: Notice) -> Overtake:
    """A kept `overtaken` notice's data."""
    return _overtake.decode(notice.data)


def nearest(passed: list[int], bound: int) -> list[int]:
    """Of the users a write passed on each board (`passed`, counts), how many on each are among the
    `bound` nearest on all its boards: those one place behind the writer on each board first (in
    the write's order of boards), then two places, and so on."""
    # Every board is given places up to a common distance `level` (all of its own where it passed
    # fewer), the deepest the bound allows; what is left goes one more place to the boards, in
    # order, that passed more. Computed, not counted out place by place: a write passing 100 took
    # a hundred turns of a Python loop.
    remaining, level = bound, 0
    boards = len(passed)
    for done, count in enumerate(sorted(passed)):
        active = boards - done  # the boards that passed at least `count`
        if (count - level) * active > remaining:
            level += remaining // active
            remaining %= active
            break
        remaining -= (count - level) * active
        level = count
    shares = [min(n, level) for n in passed]
    for i, n in enumerate(passed):
        if remaining and n > level:
            shares[i] += 1
            remaining -= 1
    return shares


def _draft(event: AwardEvent, move: Move, rank: int, user_id: str) -> NoticeDraft:
    """The notice for a user the write passed on the move's board, now at `rank`."""
    where = move.change.where
    by = Passer(user_id=event.user_id, username=event.username, score=move.change.new_score)
    overtake = Overtake(
        board=where.board, period=where.period, user_id=user_id, by=by, previous_rank=rank - 1, new_rank=rank
    )
    return NoticeDraft(user_id=user_id, type=OVERTAKEN, data=_encoder.encode(overtake).decode())


class Overtakes:
    """Finds the users each write passed, keeps their notices and hands them to the fan-out: the
    notices of every write found in one loop turn in one store write and one fan-out message."""

    def __init__(self, ranking: Ranking, store: Store, fanout: Fanout, clock: Callable[[], int]) -> None:
        self.ranking = ranking
        self.store = store
        self.fanout = fanout
        self.clock = clock
        self.told = 0  # notices kept
        self.skipped = 0  # writes whose notices were skipped: MAX_PENDING were pending
        self._skipped_unlogged = 0
        self._skip_logged_ms: int | None = None
        self._pending = 0
        # Users given notices since their last trim, and how many: their oldest beyond KEEP go
        # once they have TRIM_AFTER, else in the purge (the reads show the newest KEEP meanwhile).
        self._untrimmed: dict[str, int] = {}
        self._errands = Errands("an overtake notice")
        # The notices of every write found in one loop turn are kept in one store write and one
        # fan-out message, one such write at a time: those found while it is under way go together
        # in the next (a PostgreSQL transaction each took many turns' notices one write each).
        self._keep: TurnBatch[list[NoticeDraft], list[Notice]] = TurnBatch(
            self._keep_batch, cancelled=lambda: ServiceUnavailable("The server is stopping"), most_in_flight=1
        )

    def on_write(self, event: AwardEvent) -> None:
        """A write was placed: tell, in the background, whom it passed on its boards (a first entry
        on a board passes nobody)."""
        moves = [m for m in event.moves if m.previous_rank is not None and m.previous_rank > m.rank]
        if not moves:
            return
        if self._pending >= MAX_PENDING:
            self._skip()
            return
        self._pending += 1
        self._errands.start(self._tell(event, moves))

    def _skip(self) -> None:
        self.skipped += 1
        self._skipped_unlogged += 1
        now = self.clock()
        if self._skip_logged_ms is None or now - self._skip_logged_ms >= SKIP_LOG_MS:
            log.warning(
                "overtake notices skipped: %d writes since the last such line, %d still being worked on",
                self._skipped_unlogged,
                self._pending,
            )
            self._skipped_unlogged, self._skip_logged_ms = 0, now

    async def _tell(self, event: AwardEvent, moves: list[Move]) -> None:
        try:
            # Those passed moved down one place each: now just behind the writer, on each board.
            shares = nearest([m.previous_rank - m.rank for m in moves if m.previous_rank is not None], MAX_PASSED)
            found = await asyncio.gather(
                *(self._passed(move, share) for move, share in zip(moves, shares, strict=True))
            )
            drafts = [
                _draft(event, move, rank, user_id)
                for move, passed in zip(moves, found, strict=True)
                for rank, user_id, _ in passed
                if user_id != event.user_id
            ]
            if drafts:
                # Awaited first: `self.told += len(await ...)` would read the count before the wait
                # and lose what the other writes kept meanwhile.
                kept = await self._keep.submit(drafts)
                self.told += len(kept)
        finally:
            self._pending -= 1

    async def _passed(self, move: Move, share: int) -> list[tuple[int, str, int]]:
        """The `share` users just behind the writer on the move's board: (rank, user id, score)."""
        if share == 0:
            return []
        return await self.ranking.ranked(move.change.where, move.rank + 1, move.rank + share)

    async def _keep_batch(self, batches: list[list[NoticeDraft]]) -> Sequence[list[Notice] | Exception]:
        # One store write and one message to every process for all the writes of a loop turn.
        kept = await self.store.add_notices([draft for batch in batches for draft in batch], now_ms=self.clock())
        # Counted before the fan-out: should it fail, the notices are kept all the same, and trimmed.
        for notice in kept:
            self._untrimmed[notice.user_id] = self._untrimmed.get(notice.user_id, 0) + 1
        await self.fanout.tell(kept)
        await self._trim_due({notice.user_id for notice in kept})
        answers, start = [], 0
        for batch in batches:
            answers.append(kept[start : start + len(batch)])
            start += len(batch)
        return answers

    async def _trim_due(self, user_ids: set[str]) -> None:
        """Trim those of these users given TRIM_AFTER notices since their last trim; should the store
        fail, the purge trims them."""
        untrimmed = self._untrimmed
        due = {user_id: untrimmed.pop(user_id) for user_id in user_ids if untrimmed.get(user_id, 0) >= TRIM_AFTER}
        if not due:
            return
        try:
            await self.store.trim_notices(list(due), keep=KEEP)
        except Exception:
            log.exception("trimming the notices of %d users failed; the purge tries again", len(due))
            self._requeue(due)

    def _requeue(self, counts: dict[str, int]) -> None:
        """Users whose trim failed, due again (with what they were given meanwhile)."""
        for user_id, count in counts.items():
            self._untrimmed[user_id] = self._untrimmed.get(user_id, 0) + count

    async def kept(self, user_id: str, after: int) -> list[Notice]:
        """A user's kept notices numbered after `after`, oldest first."""
        return await self.store.notices(user_id, after=after, since_ms=self.clock() - KEEP_MS, keep=KEEP)

    async def notifications(self, user_id: str, after: int) -> NotificationsData:
        """GET /users/me/notifications: the kept notices after `after`."""
        return NotificationsData(
            notifications=[
                Notification(id=n.id, type=OVERTAKEN, created_at=iso(n.created_ms), data=overtake_of(n))
                for n in await self.kept(user_id, after)
            ]
        )

    async def purge(self) -> int:
        """Delete each user's notices beyond their newest KEEP (of the users given some since their
        last trim, TRIM_CHUNK at a time) and those older than the kept time; how many."""
        deleted = 0
        while self._untrimmed:
            chunk = {
                user_id: self._untrimmed.pop(user_id) for user_id in list(itertools.islice(self._untrimmed, TRIM_CHUNK))
            }
            try:
                deleted += await self.store.trim_notices(list(chunk), keep=KEEP)
            except Exception:
                self._requeue(chunk)  # the next purge tries them again
                raise
        return deleted + await self.store.purge_notices(self.clock() - KEEP_MS)

    async def finished(self) -> None:
        """Wait for the notices of every write placed so far."""
        await self._errands.finished()
