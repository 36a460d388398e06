"""In-process tallies the working code bumps: no lock, no metrics library, read by the exporter.

Counters are plain `int` attributes or `collections.Counter`s keyed by a bounded label value;
latencies go into a `Histogram` of fixed buckets."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter

# Seconds. A request, a Redis trip or a database transaction: the alerts' 200 ms and 500 ms are bounds.
LATENCY_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0)
# Seconds from an award's commit to its wave written to every subscriber.
WAVE_BOUNDS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
# Seconds a rebuild of the board from the database takes (10 s for a million users in Redis).
REBUILD_BOUNDS = (0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Histogram:
    """Observations counted into fixed buckets: `counts[i]` holds those at most `bounds[i]` and
    above the bound before; the last count those above every bound."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BOUNDS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        """Observations so far (read-only)."""
        return sum(self.counts)


class RouteTally:
    """One route's answers by status and their latency; bumped inline by the request edge."""

    __slots__ = ("latency", "statuses")

    def __init__(self) -> None:
        # A plain dict: a Counter's `+=` costs twice a dict's (a subclass is not on the fast path).
        self.statuses: dict[int, int] = {}
        self.latency = Histogram()


class HttpTally:
    """Requests by route template (never a raw path: bounded), and the error codes answered."""

    def __init__(self) -> None:
        self.routes: dict[str, RouteTally] = {}
        self.errors: Counter[str] = Counter()

    def route(self, template: str) -> RouteTally:
        """The tally of one route, made once when the route is registered."""
        return self.routes.setdefault(template, RouteTally())
