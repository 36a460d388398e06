"""`python -m bench bigboard`: N entries on each of K boards written straight into the store, then
the rebuild at start, rank lookups (over HTTP and inside the index), and the default board's
around-me and rank-range reads measured against the benchmark issues' targets."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from app.ranking.memory import RankIndex
from app.ranking.redis import RedisRanking
from app.records import BoardPeriod
from app.redis_client import Keys, connect

from . import profile
from .bigdata import (
    DEFAULT_BOARD,
    NEVER_PERIOD,
    Population,
    Shelf,
    Storage,
    clean_up,
    picks,
    prepare,
    read_standings,
    serve,
    shelves_for,
    storage_for,
)
from .bigreads import RANGE_LIMIT, Ask, Check, around_pass, lookup_pass, range_pass
from .bounded import bounded_run
from .load import RouteStats, call, closed_loop, user_token
from .server import HOST, JWT_SECRET, ServerProcess, free_port
from .stats import Histogram
from .usage import cpu_seconds, machine_ticks, rss_bytes, stores_cpu_seconds

LOOKUP = "GET /api/v1/users/{userId}/score"
AROUND = "GET /api/v1/boards/{board}/around/{userId}?radius=5"
RANGE = "GET /api/v1/boards/{board}/ranks?from=R&limit=10"
TARGET_RANK_P99_MS = 1.0
TARGET_BOARD_READ_P99_MS = 2.0  # around-me and rank range, one at a time
TARGET_REBUILD_SECONDS = 15.0
REBUILT = re.compile(r"leaderboards rebuilt: (\d+) standings on (\d+) board periods")
WARMUP_REQUESTS = 50
# x concurrency, then one at a time; the default board's around-me and rank range one at a time.
HTTP_PASSES = ("lookups", "lookups_serial", "around_serial", "range_serial")
TOKEN_TTL = 3600


@dataclass(frozen=True)
class BigOptions:
    """One big-board run."""

    users: int = 1_000_000  # entries on each board
    mode: str = "embedded"
    boards: int = 1  # the default board, then board-1 .. board-(K-1), each with `users` entries
    lookups: int = 20_000
    concurrency: int = 8  # HTTP lookups in flight, closed loop
    seed: int = 1
    ready_within: float = 180.0  # seconds from spawning the server to /readyz answering 200
    timeout: float = 600.0  # the whole run, clean-up included
    profile: bool = False  # py-spy the server from spawn to ready
    out: Path = Path("bench/results/bigboard")
    reads: int = 10_000  # around-me and rank-range reads, each, one at a time
    read_rounds: int = 1  # rounds of those two passes (the first is reported in full, the rest by percentiles)


def board_ids(count: int) -> list[str]:
    """The boards of a run: the default one first."""
    return [DEFAULT_BOARD, *(f"board-{k}" for k in range(1, count))]


@dataclass
class CpuWindow:
    """The whole machine's CPU over one phase next to the server's, the stores' and this process's:
    the box is shared, and "others" far above 0 means the phase's numbers were disturbed. 100 = one core."""

    wall: float
    machine: tuple[int, int]
    bench: float
    server: float
    stores: float

    @classmethod
    def open(cls, server_pid: int | None) -> CpuWindow:
        server = 0.0 if server_pid is None else cpu_seconds(server_pid)  # None: not spawned yet
        return cls(
            time.monotonic(), machine_ticks(), cpu_seconds(os.getpid(), tree=False), server, stores_cpu_seconds()
        )

    def close(self, server_pid: int) -> dict[str, float]:
        elapsed = max(time.monotonic() - self.wall, 1e-6)
        busy, total = machine_ticks()
        machine = 100 * (os.cpu_count() or 1) * (busy - self.machine[0]) / max(1, total - self.machine[1])
        server = 100 * (cpu_seconds(server_pid) - self.server) / elapsed
        stores = 100 * (stores_cpu_seconds() - self.stores) / elapsed
        bench = 100 * (cpu_seconds(os.getpid(), tree=False) - self.bench) / elapsed
        return {
            "machine": round(machine, 1),
            "server": round(server, 1),
            "redis_and_postgres": round(stores, 1),
            "bench": round(bench, 1),
            "others": round(max(0.0, machine - server - stores - bench), 1),
        }


# -- the server: start, rebuild, lookups --------------------------------------------------


def rebuild_line(log_path: Path) -> dict[str, Any] | None:
    """The server's "leaderboards rebuilt: N standings on M board periods in S s" line."""
    with contextlib.suppress(OSError):
        for line in log_path.read_text(errors="replace").splitlines():
            if "leaderboards rebuilt" not in line:
                continue
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                match = REBUILT.match(str(entry.get("message", "")))
                if match and entry.get("logger") == "app.ranking":
                    return {
                        "standings": int(match.group(1)),
                        "board_periods": int(match.group(2)),
                        "seconds": entry.get("seconds"),
                        "line": entry,
                    }
    return None


def server_side(log_path: Path) -> dict[str, dict[str, Any]]:
    """The server's own time per request (the access lines' duration_ms, from the request's
    arrival to its answer), by route: what the box's scheduling adds over HTTP is left out."""
    kinds: dict[str, Histogram] = {}
    with contextlib.suppress(OSError), log_path.open(errors="replace") as lines:
        for line in lines:
            if '"scoreboard.access"' not in line:
                continue
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                path, took = str(entry.get("path", "")), entry.get("duration_ms")
                kind = "around" if "/around/" in path else "range" if "/ranks" in path else None
                if path.endswith("/score"):
                    kind = "lookup"
                if kind is not None and isinstance(took, int | float):
                    kinds.setdefault(kind, Histogram()).record(float(took))
    return {kind: hist.summary() for kind, hist in kinds.items()}


async def _stop_spy(spy: asyncio.subprocess.Process | None) -> str | None:
    if spy is not None and spy.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            spy.send_signal(signal.SIGINT)  # py-spy writes what it has and exits
    return await profile.finish(spy)


async def start_server(server: ServerProcess, opts: BigOptions, out: Path) -> dict[str, Any]:
    """Spawn, wait for /readyz 200 (optionally under py-spy); the wall time it took."""
    folded = out / "profile-start.folded"
    window = CpuWindow.open(None)
    started = time.perf_counter()
    task = asyncio.create_task(server.astart(within=opts.ready_within))
    spy = None
    try:
        await asyncio.sleep(0)  # the task's first step spawns the process
        if opts.profile and server.proc is not None:
            spy = await profile.start(server.pid, opts.ready_within, folded, subprocesses=False)
        await task
        ready = time.perf_counter() - started
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
        profile_error = await _stop_spy(spy) if opts.profile else None
    result: dict[str, Any] = {"start_to_ready_seconds": round(ready, 3), "cpu_percent": window.close(server.pid)}
    if opts.profile:
        result["profile"] = profile.top_entries(folded) if profile_error is None and folded.exists() else None
        result["profile_error"] = profile_error
    return result


async def http_pass(
    route: str,
    make: tuple[Ask, Check],
    picks: list[int],
    server_pid: int,
    opts: BigOptions,
    concurrency: int,
) -> dict[str, Any]:
    """One request per pick, `concurrency` in flight over keep-alive; every answer checked."""
    ask, check = make
    bearer = user_token(JWT_SECRET, "reader", TOKEN_TTL)
    answers: list[tuple[int, bytes]] = []
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        def request(stats: RouteStats, keep: bool) -> Callable[[int], Awaitable[None]]:
            async def one(n: int) -> None:
                i = picks[n % len(picks)]
                payload = await call(session, stats, "GET", ask(i), bearer=bearer)
                if keep and payload is not None:
                    answers.append((i, payload))

            return one

        # Opens the keep-alive connections and warms the server's paths; not counted.
        await closed_loop(concurrency, opts.timeout, request(RouteStats(), False), limit=WARMUP_REQUESTS)
        stats, window = RouteStats(), CpuWindow.open(server_pid)
        seconds = await closed_loop(concurrency, opts.timeout, request(stats, True), limit=len(picks))
    mismatches = [found for found in (check(i, payload) for i, payload in answers) if found is not None]
    return {
        "route": route,
        "concurrency": concurrency,
        **stats.summary(seconds),
        "seconds": round(seconds, 3),
        "cpu_percent": window.close(server_pid),
        "checks": {
            "answers": len(answers),
            "reference_checked": len(answers),
            "reference_mismatches": len(mismatches),
            "first_mismatches": mismatches[:5],
        },
    }


async def run_server(
    opts: BigOptions, workdir: Path, place: Storage, population: Population, result: dict[str, Any]
) -> None:
    """Start the real server on the prepared data, measure start and lookups, stop it; `result`
    is filled as the phases end, so a run cut short still reports what it measured."""
    port = free_port()
    base = f"http://{HOST}:{port}"
    boards: dict[str, dict[str, Any]] | None = {b: {} for b in board_ids(opts.boards)} if opts.boards > 1 else None
    server = serve(place, workdir, port=port, token_ttl=300, boards=boards)
    server.log_path = opts.out / "scoreboard.log"
    result["port"] = port
    try:
        result |= await start_server(server, opts, opts.out)
        result["rss_mib_after_rebuild"] = round(rss_bytes(server.pid) / 2**20, 1)
        lookups = population.picks(opts.lookups, f"{opts.seed}/http-x{opts.concurrency}")
        result["lookups"] = await http_pass(
            LOOKUP, lookup_pass(base, population), lookups, server.pid, opts, opts.concurrency
        )
        if opts.concurrency > 1:  # one at a time too: the latency without queueing behind the others
            lookups = population.picks(opts.lookups, f"{opts.seed}/http-x1")
            result["lookups_serial"] = await http_pass(
                LOOKUP, lookup_pass(base, population), lookups, server.pid, opts, 1
            )
        result["read_rounds"] = []
        for r in range(opts.read_rounds):  # around-me and range alternated, each round new picks
            around = population.picks(opts.reads, f"{opts.seed}/around/{r}")
            found = {
                "around_serial": await http_pass(AROUND, around_pass(base, population), around, server.pid, opts, 1)
            }
            # R - 1 in 0 .. N - limit: every page full.
            starts = picks(opts.reads, max(1, len(population) - RANGE_LIMIT + 1), f"{opts.seed}/range/{r}")
            found["range_serial"] = await http_pass(RANGE, range_pass(base, population), starts, server.pid, opts, 1)
            if r == 0:
                result |= found
            else:
                result["read_rounds"].append(found)
        result["rss_mib_after_lookups"] = round(rss_bytes(server.pid) / 2**20, 1)
    finally:
        result["server_exit_code"] = await server.astop()
        result["rebuild"] = rebuild_line(server.log_path)
        result["server_side_ms"] = server_side(server.log_path)


# -- inside the index, without HTTP --------------------------------------------------------


def _us(hist: Histogram) -> dict[str, Any]:
    def us(ms: float | None) -> float | None:
        return None if ms is None else round(ms * 1000, 2)

    return {
        "count": hist.count,
        "p50_us": us(hist.percentile(50)),
        "p99_us": us(hist.percentile(99)),
        "max_us": us(hist.max),
    }


def time_index(board: RankIndex, population: Population, picks: list[int]) -> dict[str, Any]:
    """`rank(user_id)` called once per pick, each timed on its own."""
    hist, wrong = Histogram(), 0
    for i in picks:
        user_id = population.user_id(i)
        t0 = time.perf_counter_ns()
        rank = board.rank(user_id)
        hist.record((time.perf_counter_ns() - t0) / 1e6)
        wrong += rank != population.reference_rank(i)
    return {"what": "RankIndex.rank(user_id) in this process", **_us(hist), "reference_mismatches": wrong}


async def time_redis(place: Storage, population: Population, picks: list[int]) -> dict[str, Any]:
    """`RedisRanking.position(where, user_id)` (what the server asks Redis per lookup), each timed on its own."""
    assert place.redis_url is not None and place.redis_prefix is not None
    client = connect(place.redis_url, pool_size=2)
    board = RedisRanking(client, Keys(place.redis_prefix))
    where = BoardPeriod(board=DEFAULT_BOARD, period=NEVER_PERIOD)
    hist, wrong = Histogram(), 0
    try:
        for i in picks:
            t0 = time.perf_counter_ns()
            position = await board.position(where, population.user_id(i))
            hist.record((time.perf_counter_ns() - t0) / 1e6)
            wrong += position is None or position.rank != population.reference_rank(i)
    finally:
        await client.aclose()
    return {
        "what": "RedisRanking.position(where, user_id) from this process",
        **_us(hist),
        "reference_mismatches": wrong,
    }


async def index_lookups(opts: BigOptions, place: Storage, population: Population) -> dict[str, Any]:
    """The rebuild's two halves timed here (read the rows, load the index) and K in-index ranks."""
    records, read_seconds = await read_standings(place, DEFAULT_BOARD, NEVER_PERIOD)
    result: dict[str, Any] = {"read_rows_seconds": round(read_seconds, 3), "rows": len(records)}
    picks = population.picks(opts.lookups, f"{opts.seed}/index")
    if opts.mode == "embedded":
        board = RankIndex()
        started = time.perf_counter()
        board.load(records)
        result["load_index_seconds"] = round(time.perf_counter() - started, 3)
        del records
        gc.freeze()  # as above: time rank(), not a collection of the bench's heap
        result["rank"] = time_index(board, population, picks)
    else:
        del records
        result["rank"] = await time_redis(place, population, picks)
    return result


# -- the run ----------------------------------------------------------------------------------


async def measure(opts: BigOptions, workdir: Path, result: dict[str, Any]) -> None:
    """Generate, build, serve, look up, time the index; storage removed whatever happens."""
    started = time.perf_counter()
    shelves: list[Shelf] = shelves_for(opts.users, opts.seed, board_ids(opts.boards))
    population = shelves[0].population  # the default board's, which every lookup reads
    population.reference_rank(0)  # sorts the reference now, outside every timed phase
    result["generate_seconds"] = round(time.perf_counter() - started, 3)
    # The bench's own million-element lists would make each full collection of *this* process
    # pause the client for tens of ms, counted as server latency: they never change, so freeze them.
    gc.freeze()
    place = storage_for(opts.mode, workdir)
    try:
        started = time.perf_counter()
        await prepare(opts.mode, opts.users, shelves, place)
        del shelves  # the other boards' populations: only the server reads them from here on
        result["build_seconds"] = round(time.perf_counter() - started, 3)
        result["server"] = {}
        await run_server(opts, workdir, place, population, result["server"])
        result["index"] = await index_lookups(opts, place, population)
    finally:
        result["clean_up"] = await clean_up(place)


def _lookups_ok(lookups: dict[str, Any], count: int) -> dict[str, bool]:
    answers = lookups.get("checks") or {}
    return {
        "every_lookup_answered_200": lookups.get("statuses") == {"200": count} and not lookups.get("errors"),
        "http_answers_match_reference": answers.get("reference_checked") == count
        and answers.get("reference_mismatches") == 0,
    }


def checks(result: dict[str, Any], opts: BigOptions) -> dict[str, bool]:
    """Correctness only: these decide the exit code; speed never does."""
    server = result.get("server") or {}
    found = _lookups_ok(server.get("lookups") or {}, opts.lookups)
    if opts.concurrency > 1:
        serial = _lookups_ok(server.get("lookups_serial") or {}, opts.lookups)
        found = {k: ok and serial[k] for k, ok in found.items()}
    for key in ("around_serial", "range_serial"):
        passes = [server.get(key) or {}, *((r.get(key) or {}) for r in server.get("read_rounds") or [])]
        for one in passes:
            reads = _lookups_ok(one, opts.reads)
            found |= {f"{key}_{k}": ok and found.get(f"{key}_{k}", True) for k, ok in reads.items()}
    rebuild = server.get("rebuild") or {}
    rank = (result.get("index") or {}).get("rank") or {}
    return {
        **found,
        "index_ranks_match_reference": rank.get("count") == opts.lookups and rank.get("reference_mismatches") == 0,
        "rebuild_line_found_with_every_entry": rebuild.get("standings") == opts.users * opts.boards
        and rebuild.get("board_periods") == opts.boards,
        "server_stopped_cleanly": server.get("server_exit_code") == 0,
    }


def _target(value: float | None, limit: float) -> dict[str, Any]:
    return {"value": value, "limit": limit, "pass": None if value is None else value < limit}


def _p99(lookups: dict[str, Any] | None) -> float | None:
    p99: float | None = ((lookups or {}).get("latency_ms") or {}).get("p99")
    return p99


def targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The benchmark issue's two targets, each read several ways."""
    server = result.get("server") or {}
    index_p99_us = ((result.get("index") or {}).get("rank") or {}).get("p99_us")
    found = {
        "rank_lookup_p99_ms_in_index": _target(
            None if index_p99_us is None else index_p99_us / 1000, TARGET_RANK_P99_MS
        ),
        "rank_lookup_p99_ms_over_http": _target(_p99(server.get("lookups")), TARGET_RANK_P99_MS),
        "rebuild_seconds_server_log": _target((server.get("rebuild") or {}).get("seconds"), TARGET_REBUILD_SECONDS),
        "start_to_ready_seconds": _target(server.get("start_to_ready_seconds"), TARGET_REBUILD_SECONDS),
    }
    if "lookups_serial" in server:
        found["rank_lookup_p99_ms_over_http_serial"] = _target(_p99(server["lookups_serial"]), TARGET_RANK_P99_MS)
    for key in ("around", "range"):
        # The median over the rounds of each round's p99 (the first round alone when there is one).
        p99s = [_p99(r.get(f"{key}_serial")) for r in [server, *(server.get("read_rounds") or [])]]
        known = sorted(p for p in p99s if p is not None)
        median = known[len(known) // 2] if known else None
        found[f"{key}_p99_ms_over_http_serial"] = _target(median, TARGET_BOARD_READ_P99_MS)
        found[f"{key}_p99_ms_over_http_serial"]["rounds"] = p99s
    return found


async def run(opts: BigOptions) -> dict[str, Any]:
    """The whole run, bounded by `opts.timeout`; the result, written nowhere yet."""

    async def measured(workdir: Path, result: dict[str, Any]) -> None:
        await measure(opts, workdir, result)

    result = await bounded_run("bigboard", opts, measured, within=opts.timeout)
    result["checks"] = checks(result, opts)
    result["targets"] = targets(result)
    return result
