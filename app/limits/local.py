"""Limits counted in this process."""

from __future__ import annotations

import time
from collections.abc import Callable, KeysView

from . import refuse

_SWEEP_EVERY = 4096


class RateLimiter:
    """At most `count` hits in `window_s` seconds (a minute unless said) per key, smoothly refilled;
    in-process."""

    def __init__(self, count: int, *, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = window_s / count  # one hit's worth of refill
        self.tolerance = self.interval * (count - 1)  # the burst a full bucket allows
        self._clock = clock
        self._tat: dict[str, float] = {}  # theoretical arrival time per key
        self._hits = 0
        self.refused = 0

    def retry_after(self, key: str) -> float:
        """Count one hit; 0 when allowed, otherwise the seconds until one would be."""
        now = self._clock()
        self._hits += 1
        if self._hits % _SWEEP_EVERY == 0:
            self._tat = {k: t for k, t in self._tat.items() if t > now}
        tat = max(self._tat.get(key, now), now)
        wait = tat - now - self.tolerance
        if wait > 0:
            return wait
        self._tat[key] = tat + self.interval
        return 0.0

    @property
    def tracked_keys(self) -> KeysView[str]:
        """The keys whose hits are still counted; a key whose bucket is full again is swept
        out every few thousand hits."""
        return self._tat.keys()

    async def check(self, key: str) -> None:
        """Count one hit; raise RateLimited with a whole-second Retry-After when over."""
        wait = self.retry_after(key)
        if wait > 0:
            self.refused += 1
            raise refuse(wait)


class LocalSlots:
    """Slots counted in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: dict[str, set[str]] = {}

    async def acquire(self, owner: str, connection_id: str) -> bool:
        """Take a slot if one is free; a connection that holds one already keeps it."""
        held = self._held.setdefault(owner, set())
        if connection_id not in held and len(held) >= self.limit:
            return False
        held.add(connection_id)
        return True

    async def release(self, owner: str, connection_id: str) -> None:
        """Give a slot back."""
        held = self._held.get(owner)
        if held is not None:
            held.discard(connection_id)
            if not held:
                del self._held[owner]
