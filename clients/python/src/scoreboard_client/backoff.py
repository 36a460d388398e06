"""How long to wait before trying again: exponential backoff with full jitter, so that clients
dropped at the same moment (a server restart) do not come back at the same moment."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    """Delays of successive attempts: a random time up to `base * 2**n`, at most `cap` seconds."""

    base: float = 0.25
    cap: float = 10.0
    attempts: int = 0  # failures since the last success

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        ceiling = min(self.cap, self.base * 2 ** min(self.attempts, 32))  # past 2**32 only the cap counts
        self.attempts += 1
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography

    def reset(self) -> None:
        """An attempt succeeded: the next failure starts from `base` again."""
        self.attempts = 0
