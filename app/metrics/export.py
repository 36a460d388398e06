"""The exporter: moves the in-process tallies into prometheus-client's metrics (once a second and at
every scrape), samples the gauges (every few seconds and at every scrape), and renders the text a
scrape gets. With `--workers N` each process writes its values to the shared directory and a
scrape, answered by any of them, adds up all processes' files."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector

from ..limits import Limiter
from ..live.admission import Admission
from ..live.connections import Connections
from ..live.waves import WaveTally
from ..overtakes import Overtakes
from ..ranking import Ranking
from ..service import Scoreboard
from ..storage import Store
from ..tasks import pause, stop_if_cancelled
from . import tally
from .catalog import BOARD, LEADERBOARD_CHANNEL, SCORE_BOUNDS, Families, ProcessFamilies

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format every Prometheus 2.x reads
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
FLUSH_SECONDS = 1.0  # how old a scrape may find the counts of the other processes of `--workers N`
SAMPLE_EVERY = 5  # flushes between two samples of the gauges (pings, the board, the process)
PING_SECONDS = 1.0  # a backing service slower than this to answer a ping counts as down


class ActiveUsers(Protocol):
    async def count(self) -> int:
        """Distinct users active in the window."""


@dataclass(frozen=True, kw_only=True)
class Sources:
    """Where the exporter reads: the tallies of the working code and the parts it samples."""

    http: tally.HttpTally
    scoreboard: Scoreboard
    connections: Connections
    subscriptions: Callable[[], int]  # leaderboard subscriptions, every board together
    waves: WaveTally
    admission: Admission
    limiters: Mapping[str, Limiter]  # the `limit` label -> its limiter
    store: Store
    ranking: Ranking
    activity: ActiveUsers
    overtakes: Overtakes
    redis: aioredis.Redis | None = None
    redis_trips: tally.Histogram | None = None


def multiprocess_mode() -> bool:
    """Whether prometheus-client writes values to files shared by several processes (`--workers N`)."""
    return MULTIPROC_ENV in os.environ


class Exporter:
    """One app's metrics: the tallies flushed into prometheus-client, the gauges sampled, the text
    of a scrape."""

    def __init__(self, sources: Sources) -> None:
        disable_created_metrics()  # `_created` series double the output and no query here reads them
        self.sources = sources
        self.multiprocess = multiprocess_mode()
        self.registry = CollectorRegistry()
        if self.multiprocess:
            MultiProcessCollector(self.registry)
            self.families = Families(None, multiprocess=True)
        else:
            ProcessCollector(registry=self.registry)
            self.families = Families(self.registry, multiprocess=False)
        self._counted: dict[tuple[object, tuple[str, ...]], float] = {}
        self._observed: dict[tuple[object, tuple[str, ...]], tuple[list[int], float]] = {}
        self._process = ProcessCollector(registry=None) if self.multiprocess else None
        self._cpu_seconds = 0.0  # this process's CPU time at the last sample

    async def render(self) -> bytes:
        """The text of a scrape: this process's newest values first, then every process's."""
        self.flush()
        await self.sample()
        return generate_latest(self.registry)

    def flush(self) -> None:
        """Move what the tallies counted since the last flush into the metrics."""
        s, f = self.sources, self.families
        for route, routed in s.http.routes.items():
            for status, n in routed.statuses.items():
                self._count(f.requests, (route, str(status)), n)
            self._observe(f.request_seconds, (route,), routed.latency)
        for code, n in s.http.errors.items():
            self._count(f.errors, (code,), n)
        self._flush_awards()
        self._flush_live()
        self._flush_limits()
        for outcome, n in s.ranking.fills.items():
            self._count(f.rebuilds, (outcome,), n)
        self._observe(f.rebuild_seconds, (), s.ranking.fill_seconds)
        self._observe(f.database_seconds, (), s.store.round_trips)
        if s.redis_trips is not None:
            self._observe(f.redis_seconds, (), s.redis_trips)

    def _flush_awards(self) -> None:
        s, f = self.sources.scoreboard.tally, self.families
        for action, n in s.awarded.items():
            self._count(f.awards, (action, BOARD), n)
            self._count(f.tokens_spent, (action,), n)
        for action, n in s.issued.items():
            self._count(f.tokens_issued, (action,), n)
        for code, n in s.refused.items():
            self._count(f.refusals, (code,), n)
        for (action, reason), n in s.held.items():
            self._count(f.held, (action, BOARD, reason), n)
        self._count(f.top_entries, (BOARD,), s.top_entries)
        overtakes = self.sources.overtakes
        self._count(f.overtake_notices, (), overtakes.told)
        self._count(f.overtakes_skipped, (), overtakes.skipped)

    def _flush_live(self) -> None:
        c, f = self.sources.connections, self.families
        f.connections.set(len(c.connections))
        f.subscriptions.labels(LEADERBOARD_CHANNEL).set(self.sources.subscriptions())
        self._count(f.messages_sent, (), c.sent)
        self._count(f.messages_dropped, ("closing",), c.dropped_closed)
        self._count(f.messages_dropped, ("slow_client",), c.slow_closed)
        self._count(f.slow_closed, (), c.slow_closed)
        self._count(f.waves, (), self.sources.waves.made)
        self._observe(f.wave_seconds, (), self.sources.waves.latency)

    def _flush_limits(self) -> None:
        s, f = self.sources, self.families
        for limit, limiter in s.limiters.items():
            self._count(f.rate_limited, (limit,), limiter.refused)
        self._count(f.rate_limited, ("ws_connections_per_ip",), s.admission.refused_address)
        self._count(f.rate_limited, ("ws_connections_per_process",), s.admission.refused_full)
        self._count(f.rate_limited, ("ws_connections_per_user",), s.connections.refused_user)
        self._count(f.rate_limited, ("tokens_per_user",), s.scoreboard.tally.over_token_cap)

    def _count(self, metric: Counter, labels: tuple[str, ...], total: float) -> None:
        """Add to a counter what an in-process total grew by since the last flush."""
        key = (metric, labels)
        grown = total - self._counted.get(key, 0)
        if grown > 0:
            (metric.labels(*labels) if labels else metric).inc(grown)
            self._counted[key] = total

    def _observe(self, metric: Histogram, labels: tuple[str, ...], source: tally.Histogram) -> None:
        """Add to a histogram the observations an in-process one counted since the last flush."""
        key = (metric, labels)
        counts, total = list(source.counts), source.total
        before, before_total = self._observed.get(key, ([0] * len(counts), 0.0))
        if counts == before:
            return
        child: Any = metric.labels(*labels) if labels else metric
        # prometheus-client has no call to add n observations to one bucket; its per-bucket values
        # (`_buckets`, not cumulative, with +Inf last) and `_sum` are the ones `observe` bumps.
        # The version is pinned, and tests/test_metrics.py checks the buckets a scrape shows.
        for bucket, (now, then) in zip(child._buckets, zip(counts, before, strict=True), strict=True):
            if now > then:
                bucket.inc(now - then)
        child._sum.inc(total - before_total)
        self._observed[key] = (counts, total)

    async def sample(self) -> None:
        """Read the gauges that need a look at a part: the board, the active users, the pools,
        whether the backing services answer, and this process's CPU and memory (`--workers N`)."""
        s, f = self.sources, self.families
        await asyncio.gather(self._sample_board(), self._sample_active(), self._sample_backends())
        usage = s.store.pool_usage()
        if usage is not None:
            f.pool_in_use.labels("database").set(usage[0])
            f.pool_max.labels("database").set(usage[1])
        if s.redis is not None:
            pool = s.redis.connection_pool
            (_, _), (in_use, _) = pool.get_connection_count()
            f.pool_in_use.labels("redis").set(in_use)
            f.pool_max.labels("redis").set(pool.max_connections)
        if self._process is not None and f.process is not None:
            self._cpu_seconds = _sample_process(self._process, f.process, self._cpu_seconds)

    async def _sample_board(self) -> None:
        f, ranking = self.families, self.sources.ranking
        where = self.sources.scoreboard.default_where()  # the default board's current period
        counts = await _guarded("the board", ranking.counts_at_most(where, SCORE_BOUNDS))
        size = await _guarded("the board's size", ranking.size(where))
        if counts is None or size is None:
            return
        f.board_users.labels(BOARD).set(size)
        for bound, count in zip(SCORE_BOUNDS, counts, strict=True):
            f.score_distribution.labels(BOARD, str(bound)).set(count)
        f.score_distribution.labels(BOARD, "+Inf").set(size)

    async def _sample_active(self) -> None:
        active = await _guarded("the active users", self.sources.activity.count())
        if active is not None:
            self.families.active_users.set(active)

    async def _sample_backends(self) -> None:
        s, f = self.sources, self.families
        pings: dict[str, Awaitable[Any]] = {"database": s.store.ping()}
        if s.redis is not None:
            pings["redis"] = s.redis.ping()
        answers = await asyncio.gather(*(_guarded(f"a {name} ping", ping, quiet=True) for name, ping in pings.items()))
        for name, answer in zip(pings, answers, strict=True):
            f.backend_up.labels(name).set(0 if answer is None else 1)

    async def run(self) -> None:
        """Flush every second and sample every few, until cancelled."""
        flushes = 0
        while True:
            await pause(FLUSH_SECONDS)
            try:
                self.flush()
                flushes += 1
                if flushes % SAMPLE_EVERY == 0:
                    await self.sample()
            except Exception:
                stop_if_cancelled()
                log.exception("metrics flush failed")


_UP = object()  # what a guarded step that answers nothing (a ping) gives when it succeeded


async def _guarded(what: str, step: Awaitable[Any], *, quiet: bool = False) -> Any:
    """The step's answer, or None when it failed or took longer than PING_SECONDS: one part that
    is down must not keep the others from being sampled."""
    try:
        answer = await asyncio.wait_for(step, PING_SECONDS)
    except Exception as exc:
        stop_if_cancelled()
        if not quiet:
            log.debug("metrics: %s not sampled (%r)", what, exc)
        return None
    return _UP if answer is None else answer


def _sample_process(collector: ProcessCollector, process: ProcessFamilies, cpu_before: float) -> float:
    """This process's CPU, memory and descriptors, from prometheus-client's own reader of /proc;
    the CPU seconds now, which the counter was brought to."""
    values = {sample.name: sample.value for family in collector.collect() for sample in family.samples}
    gauges: dict[str, Gauge] = {
        "process_resident_memory_bytes": process.rss,
        "process_virtual_memory_bytes": process.vms,
        "process_open_fds": process.fds,
        "process_max_fds": process.max_fds,
        "process_start_time_seconds": process.start_time,
    }
    for name, gauge in gauges.items():
        if name in values:
            gauge.set(values[name])
    cpu = values.get("process_cpu_seconds_total", cpu_before)
    if cpu > cpu_before:
        process.cpu.inc(cpu - cpu_before)
    return max(cpu, cpu_before)
