"""One connection's subscription to a board channel: its message count (`seq`) and its pace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .connections import Connection
from .messages import Sequenced

SNAPSHOT = -1  # "version" of a subscriber that has nothing yet: its first message is a snapshot


class Subscription:
    """What one connection holds of a channel: the version it was last sent (SNAPSHOT: none), the
    seq of its last message, and with `maxRate` the earliest time of its next one. A message that
    would come too early is not queued: a timer asks for the then latest state when it is due, so
    a slow-paced subscriber costs one timer, whatever the rate of changes."""

    __slots__ = ("conn", "interval", "next_at", "seq", "timer", "version")

    def __init__(self, conn: Connection, max_rate: float | None = None, seq: int = 0) -> None:
        self.conn = conn
        self.version = SNAPSHOT
        self.seq = seq  # of the last message: the next one is seq + 1
        self.interval = 1 / max_rate if max_rate else 0.0
        self.next_at = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def due(self, later: Callable[[], None]) -> bool:
        """Whether a message may go now; if not, `later` is called once when one may."""
        if not self.interval:
            return True
        now = time.monotonic()
        if now >= self.next_at:
            return True
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.next_at - now, self._fire, later)
        return False

    def _fire(self, later: Callable[[], None]) -> None:
        self.timer = None
        later()

    def send(self, message: Sequenced) -> bool:
        """Send the next message of this subscription (seq + 1); False if the connection is gone."""
        if not self.conn.send_sequenced(message, self.seq + 1):
            return False
        self.seq += 1
        if self.interval:
            self.next_at = time.monotonic() + self.interval
        return True

    def cancel(self) -> None:
        """The subscription ended: no message is due any more."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
