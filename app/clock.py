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


def iso(ms: int) -> str:
    """ISO 8601 UTC with a `Z`, millisecond precision."""
    # Most calls fall in a second formatted before: its date and time are formatted once.
    second, milli = divmod(ms, 1000)
    return f"{_second_text(second)}.{milli:03d}Z"
