"""Mergeable latency histograms and counters, small enough to send between processes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# Log buckets 1% wide: percentiles within 1% of the exact value, whatever the sample count.
_GROWTH = 1.01
_LOG_GROWTH = math.log(_GROWTH)
_FLOOR_MS = 0.001


@dataclass
class Histogram:
    """Latencies in milliseconds, kept as counts per 1%-wide bucket plus the exact max."""

    buckets: dict[int, int] = field(default_factory=dict)
    count: int = 0
    total: float = 0.0
    max: float = 0.0

    def record(self, ms: float) -> None:
        index = int(math.log(max(ms, _FLOOR_MS) / _FLOOR_MS) / _LOG_GROWTH)
        self.buckets[index] = self.buckets.get(index, 0) + 1
        self.count += 1
        self.total += ms
        self.max = max(ms, self.max)

    def merge(self, other: Histogram) -> None:
        for index, n in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + n
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)

    def percentile(self, p: float) -> float | None:
        """The value below which p percent of samples fall (bucket midpoint), None when empty."""
        if not self.count:
            return None
        rank = max(1, math.ceil(self.count * p / 100))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return min(self.max, _FLOOR_MS * float(_GROWTH ** (index + 0.5)))
        return self.max

    def summary(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return {
            "count": self.count,
            "mean": rounded(self.total / self.count) if self.count else None,
            "p50": rounded(self.percentile(50)),
            "p95": rounded(self.percentile(95)),
            "p99": rounded(self.percentile(99)),
            "max": rounded(self.max) if self.count else None,
        }

    def to_wire(self) -> dict[str, Any]:
        return {"buckets": self.buckets, "count": self.count, "total": self.total, "max": self.max}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Histogram:
        return cls(buckets=dict(raw["buckets"]), count=raw["count"], total=raw["total"], max=raw["max"])


def ratio(value: float | None, base: float | None) -> float | None:
    """value / base rounded to 2 places, None when either is missing or the base is 0."""
    if value is None or not base:
        return None
    return round(value / base, 2)
