"""Live windows of one board: a range of ranks (`ranks`) or the ranks around a user (`around`),
each shared by all its subscribers and sent as diffs of the ranks whose occupant or score changed."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

from sortedcontainers import SortedList

from ..boards.board import Board
from ..ranking import Ranking
from ..records import BoardPeriod, Move, Standing
from ..tasks import stop_if_cancelled
from .connections import Connection
from .messages import RanksEntry, RanksWindow, Sequenced
from .period_end import PeriodEnd
from .subscription import SNAPSHOT, Subscription

log = logging.getLogger(__name__)

WINDOW_GAP = 0.02  # at most 50 refreshes a second per board, as the top 10's waves
RETRY_SECONDS = 0.25
REFRESH_CHUNK = 64  # windows read at once (one Redis round trip), so awards keep flowing while thousands refresh


class Occupant(NamedTuple):
    user_id: str
    username: str
    score: int


State = dict[int, Occupant]  # rank -> who holds it


class WindowKey(NamedTuple):
    """What a window shows: ranks first..last, or `radius` ranks either side of `user_id`."""

    channel: str  # "ranks" | "around"
    first: int = 0
    last: int = 0
    user_id: str = ""
    radius: int = 0


class View(NamedTuple):
    """A window's content at one version: the ranks it spans (an around window moves) and who holds them."""

    first: int
    last: int
    state: State
    total: int


class Window:
    """One window and its subscribers. Each refresh that changes what it shows is a version; a
    subscriber is sent what changed since the version it holds (all of it when the span moved or
    it holds none), so a paced subscriber skips versions and still ends on the current one."""

    __slots__ = ("key", "messages", "placed", "subscribers", "version", "views")

    def __init__(self, key: WindowKey) -> None:
        self.key = key
        self.subscribers: dict[Connection, Subscription] = {}
        self.version = 0
        self.views: dict[int, View] = {}  # versions some subscriber holds, and the current one
        self.messages: dict[int, Sequenced | None] = {}  # held version -> message to the current one
        self.placed: tuple[int, int, Window] | None = None  # its entry in the board's Spans

    @property
    def current(self) -> View | None:
        """The view of the current version (None before the first read of a period)."""
        return self.views.get(self.version)

    def covers(self, low: int, high: int | None, mover: str) -> bool:
        """Whether a write that moved ranks low..high (None: to the end) may change this window."""
        if self.key.channel == "around" and mover == self.key.user_id:
            return True
        view = self.current
        if view is None:
            return True
        if self.key.channel == "around" and not view.state:
            return False  # the user is not on the board: only their own write puts them there
        return view.first <= (high if high is not None else view.last) and low <= view.last

    def show(self, view: View) -> bool:
        """Take a fresh read; True if it shows something else than the current version."""
        current = self.current
        if current is not None and current == view:
            return False
        self.version += 1
        self.views[self.version] = view
        self.messages = {}
        return True

    def message(self, board: str, period: str, had: int) -> Sequenced | None:
        """What brings a subscriber from version `had` to the current one (None: nothing changed)."""
        if had in self.messages:
            return self.messages[had]
        view = self.views[self.version]
        before = self.views.get(had) if had != SNAPSHOT else None
        snapshot = before is None or (before.first, before.last) != (view.first, view.last)
        if snapshot:
            changed = sorted(view.state.items())
        else:
            assert before is not None
            changed = sorted((rank, o) for rank, o in view.state.items() if before.state.get(rank) != o)
        message: Sequenced | None = None
        if snapshot or changed:
            entries = [RanksEntry(rank=r, user_id=o.user_id, username=o.username, score=o.score) for r, o in changed]
            data = RanksWindow(
                board=board,
                period=period,
                channel=self.key.channel,
                snapshot=snapshot,
                entries=entries,
                total=view.total,
            )
            message = Sequenced("ranks_update", data)
        self.messages[had] = message
        return message

    def forget_unheld(self) -> None:
        """Drop the views no subscriber holds any more (the current one stays)."""
        held = {sub.version for sub in self.subscribers.values()}
        self.views = {v: view for v, view in self.views.items() if v in held or v == self.version}


class Spans:
    """A board's windows by the first rank their current view shows, so a write finds the few whose
    span may meet the ranks it moved without looking at every window (10,000 windows x 200
    awards/s spent most of a core in `covers`)."""

    def __init__(self) -> None:
        self._order = SortedList()  # (first rank, serial, window): the serial keeps windows uncompared
        self._serial = itertools.count()
        self._widest = 0  # last - first of the widest view placed: bounds how far above a move to look

    def place(self, window: Window, view: View) -> None:
        """Index the window under its view's first rank."""
        self._widest = max(self._widest, view.last - view.first)
        if window.placed is not None and window.placed[0] == view.first:
            return
        self.drop(window)
        window.placed = (view.first, next(self._serial), window)
        self._order.add(window.placed)

    def drop(self, window: Window) -> None:
        """Forget the window."""
        if window.placed is not None:
            self._order.remove(window.placed)
            window.placed = None

    def near(self, low: int, high: int | None) -> Iterator[Window]:
        """The windows whose first rank lies in low - widest .. high (None: to the end): a superset
        of those whose span meets low..high."""
        maximum = None if high is None else (high + 1,)
        for _, _, window in self._order.irange((low - self._widest,), maximum, inclusive=(True, False)):
            yield window


class Windows:
    """The windows of one board: marked when a write moves ranks they show, refreshed together at
    most every WINDOW_GAP (one read per window per refresh, however many subscribers share it),
    and each subscriber sent the diff it lacks. A new period shows every window anew (a snapshot)."""

    def __init__(self, ranking: Ranking, board: Board, clock: Callable[[], int]) -> None:
        self.ranking = ranking
        self.board = board
        self.clock = clock
        self.windows: dict[WindowKey, Window] = {}
        self.held: dict[tuple[Connection, str], Window] = {}  # (connection, channel) -> its window
        # What on_move looks at instead of every window: the windows by span, those with no view
        # yet (a write may change them), and each user's around windows (their own write moves them).
        self._spans = Spans()
        self._unread: set[Window] = set()
        self._owned: dict[str, set[Window]] = {}
        self._period = board.current(clock())
        self._where = board.where(self._period)
        self._dirty: set[Window] = set()
        self._wake = asyncio.Event()
        self._period_end = PeriodEnd(clock, self._wake.set)
        self._stopping = False

    @property
    def pending(self) -> bool:
        """Windows are marked for the next refresh (read-only)."""
        return bool(self._dirty)

    def subscriptions(self) -> int:
        """Window subscriptions on this board (read-only)."""
        return len(self.held)

    def holds(self, conn: Connection, channel: str) -> bool:
        """Whether the connection holds a window of this channel here."""
        return (conn, channel) in self.held

    async def subscribe(self, conn: Connection, key: WindowKey, max_rate: float | None) -> None:
        """Hold this window (replacing the connection's window of the same channel), starting
        with a snapshot of the current period; a window new to the board is read first."""
        # Before anything is read or sent: the period may have ended with no write or alarm since
        # (the clock jumped), and the first subscription sets the alarm for the period's end.
        self._next_period()
        self.unsubscribe(conn, key.channel)
        window = self.windows.get(key)
        if window is None:
            window = Window(key)
            await self._refresh(window)  # a board that cannot be read is the subscriber's error
            if key in self.windows:  # another subscriber made it during the read: share that one
                window = self.windows[key]
            else:
                self._add(window)
        elif window in self._dirty and await self._refresh_quietly(window):
            self._catch_up(window)  # the others get it now: the refresh took it off the next round
        sub = window.subscribers[conn] = Subscription(conn, max_rate)
        self.held[(conn, key.channel)] = window
        self._deliver(window, sub)

    def unsubscribe(self, conn: Connection, channel: str) -> None:
        """Leave the connection's window of this channel (the window goes with its last subscriber)."""
        window = self.held.pop((conn, channel), None)
        if window is None:
            return
        sub = window.subscribers.pop(conn, None)
        if sub is not None:
            sub.cancel()
        if not window.subscribers:
            self._remove(window)
        else:
            window.forget_unheld()

    def unsubscribe_all(self, conn: Connection) -> None:
        """A connection went: leave its windows."""
        for channel in ("ranks", "around"):
            self.unsubscribe(conn, channel)

    def on_move(self, user_id: str, move: Move) -> None:
        """Mark the windows a write may have changed: every rank between its old and new place
        (to the end of the board for a first entry) moved, and the writer's own around windows."""
        if move.change.where != self._where or not self.windows:
            return
        low = move.rank
        high = move.previous_rank
        if high is not None and high < low:  # moved down (a `set` to a worse value)
            low, high = high, low
        dirty = self._dirty
        # Every window `covers` could hold true for is among these (a window found twice is checked once).
        mine = self._owned.get(user_id, ())
        for window in itertools.chain(self._unread, mine, self._spans.near(low, high)):
            if window not in dirty and window.covers(low, high, user_id):
                dirty.add(window)
        if dirty:
            self._wake.set()

    def _add(self, window: Window) -> None:
        self.windows[window.key] = window
        if window.key.channel == "around":
            self._owned.setdefault(window.key.user_id, set()).add(window)
        self._index(window)

    def _remove(self, window: Window) -> None:
        self.windows.pop(window.key, None)
        self._dirty.discard(window)
        self._unread.discard(window)
        self._spans.drop(window)
        owned = self._owned.get(window.key.user_id)
        if owned is not None:
            owned.discard(window)
            if not owned:
                del self._owned[window.key.user_id]

    def _index(self, window: Window) -> None:
        """Keep on_move's lookups in step with the window's current view."""
        view = window.current
        if view is None:
            self._spans.drop(window)
            self._unread.add(window)
        else:
            self._unread.discard(window)
            self._spans.place(window, view)

    def resync(self) -> None:
        """Events may have been missed: read every window again."""
        self._dirty.update(self.windows.values())
        self._wake.set()

    async def _read(self, key: WindowKey, where: BoardPeriod) -> View:
        if key.channel == "ranks":
            shown, total = await self.ranking.page(where, key.first, key.last)
            return View(key.first, key.last, _state(shown), total)
        place, shown, total = await self.ranking.around(where, key.user_id, key.radius)
        if place is None:
            return View(0, 0, {}, total)
        first = max(1, place.rank - key.radius)
        return View(first, place.rank + key.radius, _state(shown), total)

    async def _refresh(self, window: Window) -> bool:
        self._dirty.discard(window)
        where = self._where
        try:
            view = await self._read(window.key, where)
        except BaseException:
            self._dirty.add(window)
            raise
        if where != self._where:  # the period ended during the read: read the new one
            return await self._refresh(window)
        changed = window.show(view)
        if self.windows.get(window.key) is window:  # not one that left during the read (nor a new one yet)
            self._index(window)
        return changed

    async def _refresh_quietly(self, window: Window) -> bool:
        try:
            return await self._refresh(window)
        except Exception:  # the board is unreachable: try again shortly, the last state must go out
            stop_if_cancelled()
            log.warning("window refresh postponed", exc_info=True)
            asyncio.get_running_loop().call_later(RETRY_SECONDS, self._wake.set)
            return False

    def _deliver(self, window: Window, sub: Subscription) -> None:
        if window.current is None:  # nothing read in this period yet: the refresh that reads it sends it
            return
        if not sub.due(lambda: self._deliver_due(window, sub)):
            return
        message = window.message(self._where.board, self._where.period, sub.version)
        if message is None or sub.send(message):
            sub.version = window.version

    def _deliver_due(self, window: Window, sub: Subscription) -> None:
        if window.subscribers.get(sub.conn) is sub and sub.version != window.version:
            self._deliver(window, sub)
            window.forget_unheld()

    def _next_period(self) -> None:
        """If the board's period ended, show the new one: every window is read anew and each
        subscriber sent a snapshot of it. Then keep the alarm set for the end of the period shown:
        without a write no round starts, and the windows would otherwise stay on a finished period."""
        period = self.board.after(self._period, self.clock())
        if period is not None:
            self._period, self._where = period, self.board.where(period)
            for window in self.windows.values():
                window.views, window.messages = {}, {}
                for sub in window.subscribers.values():
                    sub.version = SNAPSHOT
                self._index(window)
            self._dirty.update(self.windows.values())
            self._wake.set()  # when a subscribe found it (in a round: one spare round, marking nothing)
        self._period_end.watch(self._period)

    async def _round(self) -> None:
        """Refresh every marked window and send each subscriber what it lacks."""
        self._next_period()
        marked = list(self._dirty)
        for start in range(0, len(marked), REFRESH_CHUNK):
            # Left, or refreshed by a subscribe meanwhile: skipped.
            chunk = [w for w in marked[start : start + REFRESH_CHUNK] if w.key in self.windows and w in self._dirty]
            # Read together: in the Redis modes the reads of one loop turn share one round trip.
            await asyncio.gather(*(self._refresh_quietly(window) for window in chunk))
            for window in chunk:
                self._catch_up(window)

    def _catch_up(self, window: Window) -> None:
        """Send each subscriber of the window what it lacks of the current version."""
        for sub in list(window.subscribers.values()):
            if sub.version != window.version:
                self._deliver(window, sub)
        window.forget_unheld()

    def stop(self) -> None:
        """End `run`."""
        self._stopping = True
        self._period_end.cancel()
        self._wake.set()

    async def run(self) -> None:
        """Refresh marked windows until `stop()`, at most every WINDOW_GAP."""
        while not self._stopping:
            await self._wake.wait()
            if self._stopping:
                break
            self._wake.clear()
            started = time.monotonic()
            await self._round()
            await asyncio.sleep(max(0.0, WINDOW_GAP - (time.monotonic() - started)))


def _state(shown: list[tuple[int, Standing]]) -> State:
    return {rank: Occupant(s.user_id, s.username, s.score) for rank, s in shown}
