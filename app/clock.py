"""Wall-clock time as integer milliseconds, and its ISO 8601 UTC rendering."""

from __future__ import annotations

import functools
import time


def now_ms() -> int:
    """Milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


@functools.lru_cache(maxsize=4096)
def _second_text(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


_MILLIS = tuple(f".{milli:03d}Z" for milli in range(1000))


def iso(ms: int) -> str:
    """ISO 8601 UTC with a `Z`, millisecond precision."""
    # Called for every request's log line: the second's text is formatted once, the milliseconds
    # are looked up, not formatted.
    return _second_text(ms // 1000) + _MILLIS[ms % 1000]
