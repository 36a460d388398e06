"""The knobs of one benchmark run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MODES = ("embedded", "redis", "postgres")


@dataclass(frozen=True)
class Options:
    """Sizes, rates and durations; the defaults fit a 2-core box in a few minutes."""

    mode: str = "embedded"
    clients: int = 1000
    auth_share: float = 0.1
    rate: float = 200.0  # awards per second, open loop
    duration: float = 20.0
    read_rate: float = 200.0  # GET /scoreboard/top per second, open loop
    users: int = 2000
    hot_share: float = 0.0  # share of awards to 20 leading players: the top 10 moves, waves go out
    client_procs: int = 1
    workers: int = 1
    baselines: bool = True
    capacity: bool = True  # closed-loop throughput runs after the open-loop phase
    capacity_seconds: float = 3.0
    capacity_awards: int = 15000  # tokens issued beforehand for the closed-loop award run
    concurrency: int = 64
    drain_seconds: float = 10.0  # how long clients may take to show the final board
    profile: bool = False
    metrics: bool = False  # the server's Prometheus metrics on (its own port, scraped every scrape_seconds)
    rules: bool = False  # every action with every cheat rule, set where no award reaches them: what checking costs
    scrape_seconds: float = 15.0
    out: Path = Path("bench/results/latest")
    seed: int = 1

    @property
    def hard_cap_seconds(self) -> float:
        """The whole run, whatever happens: phases, baselines, start-up and clean-up."""
        return 3 * self.duration + 4 * self.capacity_seconds + 240
