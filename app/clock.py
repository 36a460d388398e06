"""Wall-clock time as integer milliseconds, and its ISO 8601 UTC rendering."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    """Milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


def iso(ms: int) -> str:
    """ISO 8601 UTC with a `Z`, millisecond precision."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
