"""The coalesced broadcast of one board's top 10 and its number of entries: board versions, their
pre-built frames, the sweeps that bring every subscriber to the newest version, and the end of each
period."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import msgspec

from ..boards.board import Board
from ..clock import iso
from ..flights import InFlight
from ..metrics.tally import WAVE_BOUNDS, Histogram
from ..ranking import TOP_SIZE, Ranking, last_change
from ..records import Move, Standing
from ..tasks import stop_if_cancelled
from .connections import Connection
from .messages import EndedBoard, LiveBoard, LiveEntry, Sequenced
from .period_end import PeriodEnd
from .subscription import SNAPSHOT, Subscription

log = logging.getLogger(__name__)

WAVE_RETRY_SECONDS = 0.25
WAVE_CHUNK = 256  # subscribers written between yields, so awards keep flowing during a big wave
# A sweep to 1,000 clients takes ~5 ms: back to back they made ~90 versions a second, every
# client parsing each, and the box saturated (p99 154 ms). 20 ms apart at most 50 a second.
MIN_VERSION_GAP = 0.02
# A first entry below the top changes only the count: each makes no sweep of its own (a board of a
# million players gains many a second, its top seldom), one version at most this often carries it.
COUNT_GAP = 1.0
# In the Redis modes another process's award can be read from the board before its event comes
# back over Pub/Sub. A user it brought into the top has no score to count `change` from yet, so
# the version waits for that event (which wakes it), at most ENTRANT_WAIT after it was first put
# off: then the user shows "+0". Only for a user written since about the last version's read
# (ENTRANT_WRITE_MARGIN_MS before it, for the transaction's length and the processes' clocks): one
# who entered because others left (a removal, a `set` that lowered someone) has no event coming.
ENTRANT_WAIT = 0.05
ENTRANT_WRITE_MARGIN_MS = 1000


class WaveTally:
    """What every board's waves did, counted in one place for the metrics: versions made, and the
    wave latency (from the write that changed a top to its version written to every subscriber)."""

    def __init__(self) -> None:
        self.made = 0
        self.latency = Histogram(WAVE_BOUNDS)


class Waves:
    """Sends a board's top 10 to every subscriber as a sweep: each change of the top (or, at most
    every COUNT_GAP, of the number of entries alone) makes a new board version; the sweep writes the
    newest version to each subscriber that does not have it yet. A version made while a sweep is
    under way goes to the rest of that sweep at once, and a second pass brings the first part up to
    date: a change waits about one wave (sweeps start at most every MIN_VERSION_GAP), and bursts
    coalesce (latest state wins). A sweep longer than that gap ends after its pass and, before the
    next, the broadcaster rests as long as other work needed the loop during it, so under steady
    load the awards still get it. `change` is relative to the version each subscriber had, so a
    message is built once per (previous version, version), each subscriber's `seq` spliced in. A
    subscriber with `maxRate` is skipped while not due and sent the then newest version when it is.
    When the board's period ends, every subscriber gets `period_ended` with the finished period's
    top 10, then a snapshot of the new period."""

    def __init__(
        self, ranking: Ranking, board: Board, clock: Callable[[], int], tally: WaveTally, in_flight: InFlight
    ) -> None:
        self.ranking = ranking
        self.in_flight = in_flight
        self.board = board
        self.clock = clock
        self.tally = tally
        # Subscribers in order of arrival, each with the version it was last sent (SNAPSHOT: none).
        self.subscribers: dict[Connection, Subscription] = {}
        self._period = board.current(clock())
        self._where = board.where(self._period)
        self._dirty = asyncio.Event()
        self._period_end = PeriodEnd(clock, self._dirty.set)
        self._version = 0
        self._top: list[tuple[int, Standing]] | None = None  # the board of the current version
        self._total = 0  # its number of entries
        self._count_wake: asyncio.TimerHandle | None = None
        self._entrant_wake: asyncio.TimerHandle | None = None
        self._entrant_deadline: float | None = None  # (loop time) until a version may wait for an entrant
        self._read_ms = 0  # when the current version's board read began
        # version -> each user's score before their first award after that version was made
        self._since: dict[int, dict[str, int]] = {0: {}}
        self._frames: dict[int, Sequenced] = {}  # previous version -> message of the current version
        self._swept = 0  # the version every subscriber had at the end of the last sweep
        self._advancing = asyncio.Lock()  # one version at a time (the board read may suspend)
        self._stopping = False
        self._last_top: list[tuple[str, str, int, int | None]] = []
        self._force = False  # make a new version even if the top 10 looks unchanged
        self._shrank = False  # and even if it is shorter: a user left the board
        # Wave latency: from the award that changed the top (its timestamp, taken as its transaction
        # begins) to its version written to every subscriber. The oldest such award waiting for a
        # version, and the oldest one in a version not yet written to everyone.
        self._pending_from: int | None = None
        self._unswept_from: int | None = None

    @property
    def pending(self) -> bool:
        """Changes (or a resync) are waiting for the next version (read-only)."""
        return self._dirty.is_set()

    @property
    def kept_versions(self) -> int:
        """How many board versions still keep their users' scores from before (read-only)."""
        return len(self._since)

    async def subscribe(self, conn: Connection, max_rate: float | None = None, seq: int = 0) -> None:
        """Add to the leaderboard channel (again: a fresh snapshot) and send the current board at once."""
        # A subscription this replaces ends before anything is awaited: `subscribed` has gone out,
        # and a message of the old one after it would look like the new one's.
        self.unsubscribe(conn)
        # Read the board now, not only when changes are known to wait: in the Redis modes an award
        # this process has answered reaches the hub only when its event comes back over Pub/Sub,
        # and a viewer who connects after that answer must see it in the first board.
        # It waits for no entrant's event: the board as read now is what this viewer sees first.
        if self._top is None:
            await self._advance(wait=False)  # nothing to show yet: a board that cannot be read is an error
        elif await self._try_advance(wait=False):
            # The other subscribers get the version this made in the next sweep. (One that shows a
            # user whose event has not come shows them "+0" to those too: a subscribe waits for nobody.)
            self._dirty.set()
        self.unsubscribe(conn)  # (one made meanwhile by another subscribe of this connection)
        self.subscribers[conn] = sub = Subscription(conn, max_rate, seq)
        self._deliver(sub)

    def unsubscribe(self, conn: Connection) -> None:
        """Leave the leaderboard channel of this board."""
        sub = self.subscribers.pop(conn, None)
        if sub is not None:
            sub.cancel()

    def resync(self) -> None:
        """Events may have been missed: send the current top 10 even if it looks unchanged."""
        self._force = True
        self._dirty.set()

    def shrank(self) -> None:
        """A user left the board (erased): send the current top 10, shorter as it may be."""
        self._shrank = True
        self.resync()

    def on_move(self, user_id: str, move: Move, at_ms: int) -> None:
        """Note a write on this board for the next wave: the scores `change` counts from, and a
        change of the top. A write that counted in another period than the one shown (committed
        just before a boundary) changes nothing shown."""
        if move.change.where != self._where:
            return
        previous = move.change.previous_score or 0
        for bases in self._since.values():
            bases.setdefault(user_id, previous)
        if move.rank <= TOP_SIZE or (move.previous_rank is not None and move.previous_rank <= TOP_SIZE):
            self._dirty.set()
            if self._pending_from is None:
                self._pending_from = at_ms
        elif move.previous_rank is None:
            self._count_soon()

    def _count_soon(self) -> None:
        """Make a version for a new count within COUNT_GAP (sooner if the top changes meanwhile)."""
        if self._count_wake is not None:
            return

        def due() -> None:
            self._count_wake = None
            self._dirty.set()

        self._count_wake = asyncio.get_running_loop().call_later(COUNT_GAP, due)

    def _message(self, top: list[tuple[int, Standing]], total: int, *, bases: dict[str, int]) -> Sequenced:
        entries = [_entry(rank, s, s.score - bases.get(s.user_id, s.score)) for rank, s in top]
        # As GET /top: when the shown board last changed (the newest award in it).
        board = LiveBoard(
            board=self.board.id,
            period=self._where.period,
            leaderboard=entries,
            updated_at=iso(last_change(top) or self.clock()),
            total=total,
        )
        return Sequenced("leaderboard_update", board)

    async def _advance(self, *, wait: bool = True) -> bool:
        """Make a new version if the top 10 changed (or a resync was asked for); True if made.
        `wait`: put it off while a user new to the top has no event yet (ENTRANT_WAIT)."""
        async with self._advancing:
            return await self._advance_locked(wait)

    async def _next_period(self) -> None:
        """If the board's period ended: tell every subscriber (the finished period's top 10), and
        from now on show the new period, starting every subscriber with a snapshot of it."""
        period = self.board.after(self._period, self.clock())
        if period is None:
            return
        ended = self._where
        # A write whose transaction began before the boundary may commit after it: the frozen top
        # is read once the period's writes under way have landed on its index (this process's, and
        # in the Redis modes every process's stamped near the end).
        await self.in_flight.landed(ended)
        frozen = await self.ranking.top(ended, TOP_SIZE)
        self._period, self._where = period, self.board.where(period)
        entries = [_entry(rank, s, 0) for rank, s in frozen]
        message = Sequenced("period_ended", EndedBoard(board=self.board.id, period=ended.period, leaderboard=entries))
        for sub in list(self.subscribers.values()):
            sub.send(message)  # an event, not a state: it goes at once, whatever the pace
            sub.version = SNAPSHOT
        self._last_top = []
        self._force = True

    async def _advance_locked(self, wait: bool) -> bool:
        await self._next_period()
        self._period_end.watch(self._period)
        version = self._version + 1
        # Registered before the read: awards that land while it is under way count from here.
        self._since[version] = {}
        read_ms = self.clock()
        taken, self._pending_from = self._pending_from, None
        try:
            top, total = await self.ranking.page(self._where, 1, TOP_SIZE)
        except BaseException:
            del self._since[version]
            self._pending_from = taken if taken is not None else self._pending_from
            raise
        shown = [(s.user_id, s.username, s.score, s.subscore) for _, s in top]
        # Within a period boards only grow but for an erased user (`shrank`), so a shorter top is
        # otherwise a board still being rebuilt after a Redis loss: wait for the rebuild, which
        # asks for a resync.
        unchanged = self._top is not None and shown == self._last_top and total == self._total and not self._force
        shrunk, self._shrank = self._shrank, False
        unseen = wait and not unchanged and self._entrant_unseen(top)
        if unchanged or (len(shown) < len(self._last_top) and not shrunk) or (unseen and self._put_off()):
            del self._since[version]
            if not unchanged and taken is not None:  # they wait for the rebuild's or the entrant's version
                self._pending_from = taken
            return False
        self._read_ms, self._entrant_deadline = read_ms, None
        if self._unswept_from is None:
            self._unswept_from = taken
        # What this version shows is what its `change` counts from next time, whatever the events:
        # in the Redis modes another process's award may be in the board read before its event
        # comes back over Pub/Sub, and counting from the event's previous score would count it twice.
        self._since[version].update((s.user_id, s.score) for _, s in top)
        self._version, self._top, self._total = version, top, total
        self._frames = {}
        self._last_top = shown
        self._force = False
        self.tally.made += 1
        return True

    def _entrant_unseen(self, top: list[tuple[int, Standing]]) -> bool:
        """Whether the top shows a user new to it, written since about the last version's read,
        whose event has not come (see ENTRANT_WAIT)."""
        if self._force or self._top is None:
            return False
        shown = {user_id for user_id, *_ in self._last_top}
        bases = self._since[self._version]
        since = self._read_ms - ENTRANT_WRITE_MARGIN_MS
        return any(s.user_id not in shown and s.user_id not in bases and s.updated_ms >= since for _, s in top)

    def _put_off(self) -> bool:
        """Put a version off for an entrant's event: True until ENTRANT_WAIT after the first time
        (then a timer makes it; the event the wait is for wakes it sooner)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._entrant_deadline is None:
            self._entrant_deadline = now + ENTRANT_WAIT

            def due() -> None:
                self._entrant_wake = None
                self._dirty.set()

            if self._entrant_wake is not None:  # an earlier wait's, which may come before this one ends
                self._entrant_wake.cancel()
            self._entrant_wake = loop.call_later(ENTRANT_WAIT, due)
        return now < self._entrant_deadline

    def _deliver(self, sub: Subscription) -> None:
        """Send the current version to one subscriber (when due), `change` counted from what it had."""
        if not sub.due(lambda: self._deliver_due(sub)):
            return
        had = sub.version
        message = self._frames.get(had)
        if message is None:
            assert self._top is not None  # a version exists before anyone is swept
            bases = self._since.get(had, {}) if had != SNAPSHOT else {}
            message = self._frames[had] = self._message(self._top, self._total, bases=bases)
        if sub.send(message):
            sub.version = self._version

    def _deliver_due(self, sub: Subscription) -> None:
        # A paced subscriber's time came: the newest version, if it still lacks it.
        if self.subscribers.get(sub.conn) is sub and sub.version != self._version:
            self._deliver(sub)
            if sub.version == self._version:
                self._forget_unheld()

    async def _try_advance(self, *, wait: bool = True) -> bool:
        try:
            return await self._advance(wait=wait)
        except Exception:  # the board is unreachable: try again shortly, the last state must go out
            stop_if_cancelled()  # redis-py can turn the shutdown's cancellation into an error
            log.warning("leaderboard wave postponed", exc_info=True)
            asyncio.get_running_loop().call_later(WAVE_RETRY_SECONDS, self._dirty.set)
            return False

    async def _sweep(self) -> float:
        """Bring every subscriber to the current version; the seconds other work ran at its yields."""
        started = time.monotonic()
        yielded = 0.0
        while True:
            # Any new version during the pass (made here, or by a subscribe() meanwhile) leaves
            # the part already visited behind: another pass follows.
            version = self._version
            for i, sub in enumerate(list(self.subscribers.values())):
                if sub.version != self._version and self.subscribers.get(sub.conn) is sub:
                    self._deliver(sub)
                if i % WAVE_CHUNK == WAVE_CHUNK - 1:
                    paused = time.monotonic()
                    await asyncio.sleep(0)
                    yielded += time.monotonic() - paused  # what the rest of the loop needed
                    if self._dirty.is_set():  # newer changes: the rest of this sweep gets them
                        self._dirty.clear()
                        await self._try_advance()
            self._forget_unheld()
            if self._version == version:
                break
            if time.monotonic() - started >= MIN_VERSION_GAP:
                # A long sweep under steady load: rest (in run) before the next pass, so the
                # awards that make the versions get the loop too.
                self._dirty.set()
                return yielded
        self._swept = self._version
        if self._unswept_from is not None:
            if self.subscribers:
                self.tally.latency.observe(max(0, self.clock() - self._unswept_from) / 1000)
            self._unswept_from = None
        return yielded

    def _forget_unheld(self) -> None:
        # After every pass, not only when a sweep ends: under steady load one sweep runs pass
        # after pass, and every version made meanwhile kept a base map that each award updated.
        # Kept: versions a subscriber holds, the current one, and one being made right now.
        held = {sub.version for sub in self.subscribers.values()}
        self._since = {v: bases for v, bases in self._since.items() if v in held or v >= self._version}

    def stop(self) -> None:
        """End `run` (also when a Redis client swallowed the task's cancellation)."""
        self._stopping = True
        self._period_end.cancel()
        for wake in (self._count_wake, self._entrant_wake):
            if wake is not None:
                wake.cancel()
        self._dirty.set()

    async def run(self) -> None:
        """Send board versions until `stop()`."""
        while not self._stopping:
            await self._dirty.wait()
            if self._stopping:
                break
            self._dirty.clear()
            started = time.monotonic()
            # A subscribe may have made the version already: sweep whenever anyone is behind.
            if await self._try_advance() or self._version != self._swept:
                yielded = await self._sweep()
                took = time.monotonic() - started
                # Then rest as long as other work needed the loop during the sweep: under steady
                # load a sweep to 10,000 clients otherwise went on pass after pass, the awards that
                # make the versions queued behind it (p99 608 ms) and commit -> client p99 was 5x
                # one bare wave. An otherwise idle loop gets the next version out at once.
                await asyncio.sleep(max(MIN_VERSION_GAP - took, yielded))


def _entry(rank: int, s: Standing, change: int) -> LiveEntry:
    """A place of a live top; `change` the score gained since the subscriber's previous version."""
    subscore = msgspec.UNSET if s.subscore is None else s.subscore
    return LiveEntry(
        rank=rank, user_id=s.user_id, username=s.username, score=s.score, subscore=subscore, change=f"{change:+d}"
    )
