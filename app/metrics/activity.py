"""Active users: the distinct users who started or completed an action in the current minute and
the four before it. The request path only adds the user id to a set; the exporter drains it when
it samples, into an exact count of this process (embedded) or a HyperLogLog per minute in Redis,
which every process shares, so that `--workers N` and many hosts count a user once."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from ..redis_client import Keys, unavailable_on_outage

WINDOW_MINUTES = 5
# The embedded count is exact up to this many users (about 100 bytes each); beyond, it stays at
# the cap and says "at least".
MAX_TRACKED_USERS = 200_000


def _minute() -> int:
    return int(time.time() // 60)


class LocalActivity:
    """Exact in this process: each user's last active minute, pruned when the minute turns."""

    def __init__(self) -> None:
        self.fresh: set[str] = set()  # seen since the last count
        self._last_minute: dict[str, int] = {}
        self._pruned = _minute()

    def saw(self, user_id: str) -> None:
        """A user started or completed an action."""
        self.fresh.add(user_id)

    async def count(self) -> int:
        """Distinct users active in the window."""
        fresh, self.fresh = self.fresh, set()
        now = _minute()
        last = self._last_minute
        for user_id in fresh:
            if user_id in last or len(last) < MAX_TRACKED_USERS:
                last[user_id] = now
        if now != self._pruned:  # once a minute: a walk over every user tracked
            self._pruned = now
            oldest = now - WINDOW_MINUTES + 1
            self._last_minute = {user: minute for user, minute in last.items() if minute >= oldest}
        return len(self._last_minute)


class SharedActivity:
    """Across every process: a Redis HyperLogLog per minute (±0.8 %, 12 KiB each), the window's
    count one PFCOUNT of its minutes."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self.fresh: set[str] = set()

    def saw(self, user_id: str) -> None:
        """A user started or completed an action."""
        self.fresh.add(user_id)

    async def count(self) -> int:
        """Distinct users active in the window, in every process."""
        fresh, self.fresh = self.fresh, set()
        now = _minute()
        pipe = self.client.pipeline(transaction=False)
        if fresh:
            key = self.keys.active(now)
            pipe.pfadd(key, *fresh)
            pipe.expire(key, (WINDOW_MINUTES + 1) * 60)
        pipe.pfcount(*(self.keys.active(now - back) for back in range(WINDOW_MINUTES)))
        try:
            with unavailable_on_outage():
                replies = await pipe.execute()
        except BaseException:
            self.fresh |= fresh  # counted at the next sample instead
            raise
        return int(replies[-1])
