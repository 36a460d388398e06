"""`python -m bench boards awards`: awards on three boards at once against awards on one, and both
against the bare PyJWT + ZINCRBY endpoint (reads against hello-world), alternated round by round on
the same servers; with the Redis round trips and database transactions each award made.

`python -m bench boards rollover`: a board of N entries whose period ends during the run, under a
closed loop of awards and reads; the latency around the boundary against the latency before it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import redis.asyncio as aioredis

from app.boards.periods import Schedule

from . import capacity, profile, storage, wrk
from .bigdata import Shelf, Storage, clean_up, prepare, serve, shelves_for, storage_for
from .bounded import bounded_run
from .load import TOP, Award, RouteStats, call, issue_tokens, user_token
from .options import Options
from .runner import HELLO, ZINCRBY
from .server import HOST, JWT_SECRET, ServerProcess, baseline_process, free_port, scoreboard_process
from .stats import Histogram, ratio
from .usage import rss_bytes

UPDATE_PATH = "/api/v1/scoreboard/update"
INITIALIZE_PATH = "/api/v1/actions/initialize"
ONE, THREE = "AWARD_ONE_BOARD", "AWARD_THREE_BOARDS"
AWARD_BOARDS = {ONE: ["global"], THREE: ["global", "side-1", "side-2"]}
TOKEN_TTL = 7200


def _session(limit: int = 256) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, force_close=False), timeout=aiohttp.ClientTimeout(total=30)
    )


def _median(values: Sequence[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return round(statistics.median(found), 3) if found else None


def _spread(values: list[float | None]) -> dict[str, Any]:
    """Median, min and max of one ratio over the rounds."""
    found = [v for v in values if v is not None]
    return {
        "median": _median(found),
        "min": min(found) if found else None,
        "max": max(found) if found else None,
        "rounds": found,
    }


async def _storage(mode: str, kind: str) -> tuple[str | None, str | None, str | None, str | None]:
    """(redis_url, redis_prefix, schema, database_url) of a fresh place for `mode`."""
    redis_url = prefix = schema = database_url = None
    if mode in ("redis", "postgres"):
        if not await storage.redis_reachable():
            raise RuntimeError(f"{mode} mode needs Redis at {storage.REDIS_URL}")
        redis_url, prefix = storage.REDIS_URL, storage.unique_name(kind)
    if mode == "postgres":
        schema = storage.unique_name(kind)
        database_url = await storage.create_schema(schema)
    return redis_url, prefix, schema, database_url


# -- awards on one board and on three -------------------------------------------------------


@dataclass(frozen=True)
class AwardsOptions:
    """One `boards awards` run."""

    mode: str = "embedded"
    rounds: int = 5
    awards: int = 6000  # single-use tokens per action per round
    award_seconds: float = 5.0  # wrk's -d for them: the rate is over the time to the last answer, or -d
    concurrency: int = 64  # as bench/capacity.py's award runs
    read_seconds: float = 3.0  # each cycled closed loop (reads, hello, zincrby)
    users: int = 2000
    baselines: bool = True
    profile: bool = False  # py-spy the server over one extra round of each action, after the timed ones
    timeout: float = 1800.0
    out: Path = Path("bench/results/boards-awards")


def _metric_counts(text: str) -> dict[str, float]:
    """The `_count` of the round-trip histograms in a Prometheus scrape."""
    found = {}
    for name in ("scoreboard_redis_round_trip_seconds_count", "scoreboard_database_round_trip_seconds_count"):
        match = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
        if match:
            found[name.removeprefix("scoreboard_").removesuffix("_seconds_count")] = float(match.group(1))
    return found


async def _scrape(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with session.get(url) as resp:
        return _metric_counts(await resp.text())


async def _redis_calls(client: aioredis.Redis | None) -> Counter[str]:
    """Calls per command so far (INFO commandstats): the whole Redis, which other clients share."""
    if client is None:
        return Counter()
    stats = await client.info("commandstats")
    return Counter({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()})


@dataclass
class _Costs:
    """What the server made per award: Redis round trips and commands, database transactions."""

    metrics_url: str
    redis: aioredis.Redis | None
    before: dict[str, float] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)

    async def open(self, session: aiohttp.ClientSession) -> None:
        self.before = await _scrape(session, self.metrics_url)
        self.calls = await _redis_calls(self.redis)

    async def close(self, session: aiohttp.ClientSession, awards: int) -> dict[str, Any]:
        after = await _scrape(session, self.metrics_url)
        calls = await _redis_calls(self.redis)
        per = max(1, awards)
        found: dict[str, Any] = {
            f"{name}s_per_award": round((after[name] - self.before.get(name, 0)) / per, 3)
            for name in after
            if name in self.before
        }
        if self.redis is not None:
            delta = {k: v - self.calls.get(k, 0) for k, v in calls.items() if v > self.calls.get(k, 0)}
            found["redis_commands_per_award"] = {
                k: round(v / per, 3) for k, v in sorted(delta.items(), key=lambda kv: -kv[1]) if v / per >= 0.01
            }
        return found


def _plan(bearers: list[str], action: str, count: int, tag: str) -> list[Award]:
    awards = []
    for i in range(count):
        award = Award(bearer=bearers[i % len(bearers)], action_id=f"{tag}-{i}")
        award.body = msgspec.json.encode({"actionType": action, "actionId": award.action_id})
        awards.append(award)
    return awards


async def _issue(session: aiohttp.ClientSession, base: str, awards: list[Award]) -> None:
    stats = await issue_tokens(session, base, awards, 64)
    if stats.statuses.get("200", 0) != len(awards):
        raise RuntimeError(f"could not issue the action tokens: {stats.summary()}")


async def _award_phase(
    opts: Options, session: aiohttp.ClientSession, base: str, pid: int, awards: list[Award], costs: _Costs
) -> dict[str, Any]:
    route = capacity.Route(UPDATE_PATH, "POST", UPDATE_PATH, [(a.bearer, a.body) for a in awards], once=True)
    await costs.open(session)
    # Settled: what an award puts off until after its answer (its notices, the sealing of its
    # history rows) is its cost too, and must not run into the next phase.
    summary = await capacity.costed(pid, capacity._closed_loop(opts, session, base, route), settled=True)
    summary |= await costs.close(session, summary.get("ok", 0))
    return summary


def _routes_summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each ratio over the rounds: its median, min and max."""

    def per_round(fn: Callable[[dict[str, Any]], float | None]) -> dict[str, Any]:
        return _spread([fn(r) for r in rounds])

    def rate(r: dict[str, Any], name: str) -> float | None:
        value: float | None = (r.get(name) or {}).get("ok_per_second")
        return value

    def cpu(r: dict[str, Any], name: str) -> float | None:
        value: float | None = (r.get(name) or {}).get("server_cpu_us_per_request")
        return value

    return {
        "three_vs_one_boards_throughput": per_round(lambda r: ratio(rate(r, THREE), rate(r, ONE))),
        # Inverted, so that more is better as for throughput: one board's CPU per award over three's.
        "three_vs_one_boards_cpu_efficiency": per_round(lambda r: ratio(cpu(r, ONE), cpu(r, THREE))),
        "one_board_award_vs_zincrby": per_round(lambda r: ratio(rate(r, ONE), rate(r, ZINCRBY))),
        "three_boards_award_vs_zincrby": per_round(lambda r: ratio(rate(r, THREE), rate(r, ZINCRBY))),
        "read_vs_hello": per_round(lambda r: ratio(rate(r, TOP), rate(r, HELLO))),
        "one_board_award_cpu_vs_zincrby": per_round(lambda r: ratio(cpu(r, ZINCRBY), cpu(r, ONE))),
        "read_cpu_vs_hello": per_round(lambda r: ratio(cpu(r, HELLO), cpu(r, TOP))),
    }


async def _profile_round(
    opts: AwardsOptions,
    cap: Options,
    session: aiohttp.ClientSession,
    base: str,
    server: ServerProcess,
    tokens: dict[str, list[Award]],
    costs: _Costs,
) -> dict[str, Any]:
    """py-spy over one more phase of each action (not part of the ratios)."""
    found: dict[str, Any] = {}
    for action in (ONE, THREE):
        folded = opts.out / f"profile-{action.lower()}.folded"
        spy = await profile.start(server.pid, 2 * opts.award_seconds, folded, subprocesses=False)
        phase = await _award_phase(cap, session, base, server.pid, tokens[action], costs)
        if spy is not None and spy.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                spy.send_signal(2)  # SIGINT: py-spy writes what it has
        error = await profile.finish(spy)
        found[action] = {
            "phase": phase,
            "profile_error": error,
            "profile": profile.top_entries(folded) if error is None and folded.exists() else None,
        }
    return found


async def run_awards(opts: AwardsOptions, workdir: Path) -> dict[str, Any]:
    """Start the Scoreboard (both actions) and the baseline; alternate their closed loops."""
    redis_url, prefix, schema, database_url = await _storage(opts.mode, "awards")
    port, metrics_port = free_port(), free_port()
    base = f"http://{HOST}:{port}"
    server = scoreboard_process(
        workdir,
        port=port,
        redis_url=redis_url,
        database_url=database_url,
        redis_prefix=prefix,
        token_ttl=TOKEN_TTL,
        workers=1,
        metrics_port=metrics_port,
        boards={"global": {}, "side-1": {}, "side-2": {}},
        actions={name: {"score": 10, "min_seconds": 0, "boards": boards} for name, boards in AWARD_BOARDS.items()},
        name="awards",
    )
    server.log_path = opts.out / "scoreboard.log"
    has_redis = await storage.redis_reachable()
    base_prefix = storage.unique_name("base")
    baseline = None
    if opts.baselines:
        bport = free_port()
        baseline = baseline_process(
            workdir, port=bport, redis_url=storage.REDIS_URL if has_redis else None, redis_prefix=base_prefix
        )
        baseline.log_path = opts.out / "baseline.log"
    redis = aioredis.Redis.from_url(storage.REDIS_URL) if redis_url else None
    result: dict[str, Any] = {"mode": opts.mode, "rounds": []}
    try:
        await server.astart()
        if baseline is not None:
            await baseline.astart()
        result |= await _alternate(opts, base, server, baseline, has_redis, redis, metrics_port, result["rounds"])
    finally:
        result["server_exit_code"] = await server.astop()
        if baseline is not None:
            await baseline.astop()
        if redis is not None:
            await redis.aclose()
        if prefix is not None:
            result["redis_keys_removed"] = await storage.drop_redis_prefix(prefix)
        if has_redis and baseline is not None:
            await storage.drop_redis_prefix(base_prefix)
        if schema is not None:
            await storage.drop_schema(schema)
    return result


async def _alternate(
    opts: AwardsOptions,
    base: str,
    server: ServerProcess,
    baseline: ServerProcess | None,
    has_redis: bool,
    redis: aioredis.Redis | None,
    metrics_port: int,
    rounds: list[dict[str, Any]],
) -> dict[str, Any]:
    cap = Options(concurrency=opts.concurrency, capacity_seconds=opts.award_seconds)
    cycled = Options(concurrency=opts.concurrency, capacity_seconds=opts.read_seconds)
    bearers = [user_token(JWT_SECRET, f"player-{i}", TOKEN_TTL) for i in range(opts.users)]
    costs = _Costs(f"http://{HOST}:{metrics_port}/metrics", redis)
    found: dict[str, Any] = {}
    async with _session() as session:
        for r in range(opts.rounds):
            tokens = {a: _plan(bearers, a, opts.awards, f"r{r}-{a.lower()}") for a in (ONE, THREE)}
            started = time.perf_counter()
            for awards in tokens.values():
                await _issue(session, base, awards)
            one: dict[str, Any] = {"issue_seconds": round(time.perf_counter() - started, 2)}
            # Alternate which goes first: a drift over the round favours neither.
            for action in (ONE, THREE) if r % 2 == 0 else (THREE, ONE):
                one[action] = await _award_phase(cap, session, base, server.pid, tokens[action], costs)
            top = capacity.Route(TOP, "GET", "/api/v1/scoreboard/top")
            one[TOP] = await capacity.costed(server.pid, capacity._closed_loop(cycled, session, base, top))
            if baseline is not None:
                bbase = baseline.url
                zb = [(b, b"{}") for b in bearers]
                if has_redis:
                    z = capacity.Route(ZINCRBY, "POST", "/zincrby", zb)
                    one[ZINCRBY] = await capacity.costed(baseline.pid, capacity._closed_loop(cycled, session, bbase, z))
                hello = capacity.Route(HELLO, "GET", "/hello")
                one[HELLO] = await capacity.costed(baseline.pid, capacity._closed_loop(cycled, session, bbase, hello))
            rounds.append(one)
        if opts.profile:
            tokens = {a: _plan(bearers, a, opts.awards, f"profile-{a.lower()}") for a in (ONE, THREE)}
            for awards in tokens.values():
                await _issue(session, base, awards)
            found["profiled"] = await _profile_round(opts, cap, session, base, server, tokens, costs)
    return found


async def awards(opts: AwardsOptions) -> dict[str, Any]:
    """The whole `boards awards` run, bounded by `opts.timeout`."""

    async def measured(workdir: Path, result: dict[str, Any]) -> None:
        result["server"] = await run_awards(opts, workdir)

    generator = "wrk" if wrk.available() else "python"
    result = await bounded_run(
        "boards-awards", opts, measured, within=opts.timeout, generator=generator, awards_on=AWARD_BOARDS
    )
    rounds = (result.get("server") or {}).get("rounds") or []
    result["ratios"] = _routes_summary(rounds)
    result["checks"] = awards_checks(rounds, opts)
    return result


def awards_checks(rounds: list[dict[str, Any]], opts: AwardsOptions) -> dict[str, bool]:
    """Correctness only: every award answered 200 once, every read 200."""
    every = len(rounds) == opts.rounds
    return {
        "every_round_ran": every,
        # Each token once: all of them, or as many as -d allowed.
        "every_award_answered_200": every
        and all(0 < r[a]["ok"] == r[a]["sent"] <= opts.awards for r in rounds for a in (ONE, THREE)),
        "every_read_answered_200": every and all(r[TOP]["ok"] == r[TOP]["sent"] > 0 for r in rounds),
    }


# -- rollover ----------------------------------------------------------------------------------


ROLL_BOARD, ROLL_ACTION = "roll", "ROLL"
WINDOW_SECONDS = 1.0  # "around the boundary": a second either side of it
WARMUP_SECONDS = 1.0  # the load's first second (connections opening) is in no window
SLOW_MS = 50.0
READ_KINDS = ("around", "range", "top")


@dataclass(frozen=True)
class RolloverOptions:
    """One `boards rollover` run."""

    users: int = 1_000_000
    mode: str = "embedded"
    awarders: int = 2  # closed-loop workers, each initialize + update back to back
    readers: int = 2  # closed-loop workers cycling around-me, rank range and top
    lead: float | None = None  # seconds from the build's start to the boundary at least (None: by size)
    before: float = 20.0  # seconds of load before the boundary (less if the server is ready later)
    # Seconds of load after it: past the embedded server's once-a-minute forgetting of periods no
    # longer readable, which with `keep` 0 frees the finished N-entry index within a minute.
    after: float = 70.0
    keep: int = 0  # the board's keep_periods: 0, the finished period stops being readable at the boundary
    seed: int = 1
    timeout: float = 900.0
    out: Path = Path("bench/results/boards-rollover")

    def lead_seconds(self) -> float:
        if self.lead is not None:
            return self.lead
        # Building a million entries and sealing their history takes ~170 s here; then the start.
        per_million = {"embedded": 240.0, "redis": 270.0, "postgres": 330.0}[self.mode]
        return 10.0 + self.before + per_million * self.users / 1_000_000


def boundary_after(seconds: float, now: float | None = None) -> int:
    """The first whole minute at least `seconds` from now (epoch seconds)."""
    at = (time.time() if now is None else now) + seconds
    return int(math.ceil(at / 60) * 60)


def roll_board(boundary: int, keep: int) -> tuple[dict[str, Any], Schedule]:
    """A board that resets once an hour at the boundary's minute (UTC): the period holding now
    ends at `boundary`. Weekly, daily and cron boards roll over the same way: a new period is a
    new key, starting empty, and the period that falls out of `keep` is forgotten."""
    reset = f"{time.gmtime(boundary).tm_min} * * * *"
    return {"reset": reset, "timezone": "UTC", "keep_periods": keep}, Schedule(reset, "UTC")


@dataclass
class _Sample:
    at: float  # wall clock when the request started
    ms: float
    ok: bool


@dataclass
class _Load:
    """Every request's start and latency, by kind; the periods the awards landed in."""

    samples: dict[str, list[_Sample]] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    periods: Counter[str] = field(default_factory=Counter)
    late_or_early: int = 0  # awards whose period disagrees with the bench's clock by more than the request
    awarded_after: set[str] = field(default_factory=set)

    def add(self, kind: str, at: float, ms: float, ok: bool) -> None:
        self.samples.setdefault(kind, []).append(_Sample(at, ms, ok))


class _Answer(msgspec.Struct):
    data: dict[str, Any]


_decode_answer = msgspec.json.Decoder(_Answer).decode


async def _timed(
    session: aiohttp.ClientSession, load: _Load, kind: str, method: str, url: str, **kw: Any
) -> bytes | None:
    at = time.time()
    stats = RouteStats()
    payload = await call(session, stats, method, url, **kw)
    load.add(kind, at, stats.latency.max, payload is not None)
    for status, n in stats.statuses.items():
        load.statuses[f"{kind} {status}"] += n
    for error, n in stats.errors.items():
        load.statuses[f"{kind} {error}"] += n
    return payload


async def _closed_load(
    opts: RolloverOptions, base: str, boundary: int, stop_at: float, periods: tuple[str, str], load: _Load
) -> None:
    """Awarders and readers back to back until `stop_at` (wall clock)."""
    rng = random.Random(opts.seed)
    counter = iter(range(10**12))
    bearers: dict[int, str] = {}

    def bearer(i: int) -> str:
        if i not in bearers:
            bearers[i] = user_token(JWT_SECRET, f"user-{i}", TOKEN_TTL)
        return bearers[i]

    async with _session(limit=opts.awarders + opts.readers + 4) as session:

        async def awarder() -> None:
            while time.time() < stop_at:
                n, i = next(counter), rng.randrange(opts.users)
                body = msgspec.json.encode({"actionType": ROLL_ACTION, "actionId": f"roll-{n}"})
                issued = await _timed(
                    session, load, "initialize", "POST", base + INITIALIZE_PATH, body=body, bearer=bearer(i)
                )
                if issued is None:
                    continue
                token = _decode_answer(issued).data["actionToken"]
                body = msgspec.json.encode({"actionToken": token, "actionId": f"roll-{n}"})
                at = time.time()
                done = await _timed(session, load, "award", "POST", base + UPDATE_PATH, body=body, bearer=bearer(i))
                if done is None:
                    continue
                period = _decode_answer(done).data["boards"][0]["period"]
                load.periods[period] += 1
                expected = periods[0] if time.time() < boundary else periods[1]
                if period != expected and not at < boundary <= time.time():
                    load.late_or_early += 1
                if period == periods[1]:
                    load.awarded_after.add(f"user-{i}")

        async def reader(k: int) -> None:
            kinds = READ_KINDS[k % len(READ_KINDS) :] + READ_KINDS[: k % len(READ_KINDS)]
            j = 0
            while time.time() < stop_at:
                kind = kinds[j % len(kinds)]
                j += 1
                board = f"{base}/api/v1/boards/{ROLL_BOARD}"
                if kind == "around":
                    url = f"{board}/around/user-{rng.randrange(opts.users)}?radius=5"
                elif kind == "range":
                    url = f"{board}/ranks?from={rng.randrange(1, opts.users)}&limit=10"
                else:
                    url = f"{board}/top"
                await _timed(session, load, kind, "GET", url)

        await asyncio.gather(*(awarder() for _ in range(opts.awarders)), *(reader(k) for k in range(opts.readers)))


def _window(samples: list[_Sample], start: float, end: float) -> dict[str, Any]:
    hist = Histogram()
    for s in samples:
        if start <= s.at < end:
            hist.record(s.ms)
    return {
        "count": hist.count,
        "p50_ms": None if not hist.count else round(hist.percentile(50) or 0, 2),
        "p99_ms": None if not hist.count else round(hist.percentile(99) or 0, 2),
        "max_ms": None if not hist.count else round(hist.max, 2),
        f"over_{SLOW_MS:g}_ms": sum(1 for s in samples if start <= s.at < end and s.ms > SLOW_MS),
    }


def slowest(load: _Load, boundary: int, count: int = 8) -> list[dict[str, Any]]:
    """The slowest requests: kind, ms, and when they started, in seconds from the boundary."""
    every = [(s.ms, kind, s.at) for kind, samples in load.samples.items() for s in samples]
    return [
        {"kind": kind, "ms": round(ms, 1), "at_s": round(at - boundary, 2)}
        for ms, kind, at in sorted(every, reverse=True)[:count]
    ]


def windows(
    load: _Load, boundary: int, started: float, ended: float, unlinked: float | None = None
) -> dict[str, dict[str, Any]]:
    """Latency per kind (and awards + reads together) before, around and after the boundary, and
    around the moment the server unlinked the finished period's keys (Redis mode), if it did."""
    spans = {
        "before": (started + WARMUP_SECONDS, boundary - WINDOW_SECONDS),
        "around": (boundary - WINDOW_SECONDS, boundary + WINDOW_SECONDS),
        "after": (boundary + WINDOW_SECONDS, ended),
    }
    if unlinked is not None:
        spans["unlink"] = (unlinked - WINDOW_SECONDS, unlinked + WINDOW_SECONDS)
    kinds = dict(load.samples)
    kinds["reads"] = [s for k in READ_KINDS for s in load.samples.get(k, [])]
    kinds["writes"] = load.samples.get("initialize", []) + load.samples.get("award", [])
    return {kind: {name: _window(samples, *span) for name, span in spans.items()} for kind, samples in kinds.items()}


UNLINKED = re.compile(r"unlinked (\d+) Redis keys")


def unlinked_line(log_path: Path) -> tuple[float, int] | None:
    """When the server's sweep (Redis mode) first logged that it unlinked period keys (epoch
    seconds, just after the UNLINK answered) and how many keys, from its JSON log."""
    with contextlib.suppress(OSError), log_path.open(errors="replace") as lines:
        for line in lines:
            if "unlinked" not in line:
                continue
            try:
                entry = json.loads(line)
                found = UNLINKED.match(entry["message"])
                if found:
                    return datetime.fromisoformat(entry["timestamp"]).timestamp(), int(found[1])
            except (ValueError, KeyError, TypeError):
                continue
    return None


async def _board_size(base: str, period: str) -> int | None:
    async with _session(limit=1) as session:
        stats = RouteStats()
        payload = await call(session, stats, "GET", f"{base}/api/v1/boards/{ROLL_BOARD}/periods")
        if payload is None:
            return None
        for entry in _decode_answer(payload).data["periods"]:
            if entry["id"] == period:
                return int(entry["entries"])
        return 0


async def run_rollover(opts: RolloverOptions, workdir: Path, result: dict[str, Any]) -> None:
    """Build N entries in the period that ends at the boundary, serve, load across it."""
    boundary = boundary_after(opts.lead_seconds())
    board, schedule = roll_board(boundary, opts.keep)
    now_ms = int(time.time() * 1000)
    current = schedule.at(now_ms)
    following = schedule.after(current)
    assert current.ends_ms == boundary * 1000 and following is not None
    result |= {"board": board, "boundary": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(boundary))}
    result["periods"] = {"before": current.id, "after": following.id}
    started = time.perf_counter()
    shelves: list[Shelf] = shelves_for(opts.users, opts.seed, [ROLL_BOARD], period=current.id)
    place: Storage = storage_for(opts.mode, workdir)
    try:
        await prepare(opts.mode, opts.users, shelves, place)
        del shelves
        result["build_seconds"] = round(time.perf_counter() - started, 2)
        port = free_port()
        base = f"http://{HOST}:{port}"
        actions = {ROLL_ACTION: {"score": 10, "min_seconds": 0, "boards": [ROLL_BOARD]}}
        server = serve(
            place, workdir, port=port, token_ttl=TOKEN_TTL, boards={"global": {}, ROLL_BOARD: board}, actions=actions
        )
        server.log_path = opts.out / "scoreboard.log"
        try:
            spawned = time.perf_counter()
            await server.astart(within=max(30.0, boundary - time.time()))
            result["start_to_ready_seconds"] = round(time.perf_counter() - spawned, 2)
            result["rss_mib_after_start"] = round(rss_bytes(server.pid) / 2**20, 1)
            # Load from `before` seconds ahead of the boundary (or from now, if later than that).
            wait = boundary - opts.before - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            load_start = time.time()
            result["seconds_of_load_before_boundary"] = round(boundary - load_start, 2)
            if boundary - load_start < 2 * WINDOW_SECONDS:
                raise RuntimeError("the server was ready too close to the boundary: raise --lead")
            load = _Load()
            await _closed_load(opts, base, boundary, boundary + opts.after, (current.id, following.id), load)
            load_end = time.time()
            unlinked = unlinked_line(server.log_path)
            if unlinked is not None:
                result["unlinked"] = {"at_s": round(unlinked[0] - boundary, 2), "keys": unlinked[1]}
            result["windows"] = windows(load, boundary, load_start, load_end, None if unlinked is None else unlinked[0])
            result["slowest"] = slowest(load, boundary)
            result["statuses"] = dict(load.statuses)
            result["award_periods"] = dict(load.periods)
            result["awards_in_a_period_off_the_clock"] = load.late_or_early
            result["new_period_users_awarded"] = len(load.awarded_after)
            result["entries_after"] = {
                "previous": await _board_size(base, current.id),
                "current": await _board_size(base, following.id),
            }
            result["rss_mib_after_load"] = round(rss_bytes(server.pid) / 2**20, 1)
        finally:
            result["server_exit_code"] = await server.astop()
    finally:
        result["clean_up"] = await clean_up(place)


def rollover_checks(result: dict[str, Any], opts: RolloverOptions) -> dict[str, bool]:
    """Correctness only: every request 200, awards in the period of their time, both periods' sizes."""
    statuses = result.get("statuses") or {}
    periods = result.get("periods") or {}
    landed = result.get("award_periods") or {}
    sizes = result.get("entries_after") or {}
    before_n = landed.get(periods.get("before"), 0)
    return {
        "every_request_answered_200": bool(statuses) and all(k.endswith(" 200") for k in statuses),
        "awards_landed_before_and_after_the_boundary": before_n > 0 and landed.get(periods.get("after"), 0) > 0,
        "awards_in_the_period_of_their_time": result.get("awards_in_a_period_off_the_clock") == 0
        and set(landed) <= set(periods.values()),
        # Kept: every entry still readable; not kept: no longer listed.
        "previous_period_as_kept": sizes.get("previous") is not None
        and (sizes["previous"] >= opts.users if opts.keep > 0 else sizes["previous"] == 0),
        "new_period_holds_the_users_awarded_since": sizes.get("current") == result.get("new_period_users_awarded"),
        "server_stopped_cleanly": result.get("server_exit_code") == 0,
    }


def rollover_targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """No award or read over 50 ms around the boundary, nor around the unlink (when there was one)."""
    w = result.get("windows") or {}
    found = {}
    spans = {"around": "around_boundary", "unlink": "at_unlink"}
    for span, named in spans.items():
        for kind in ("award", "initialize", "reads"):
            window = (w.get(kind) or {}).get(span)
            if window is None:
                continue
            value = window.get("max_ms")
            found[f"{kind}_max_ms_{named}"] = {
                "value": value,
                "limit": SLOW_MS,
                "pass": None if value is None else value < SLOW_MS,
            }
    return found


async def rollover(opts: RolloverOptions) -> dict[str, Any]:
    """The whole `boards rollover` run, bounded by `opts.timeout`."""

    async def measured(workdir: Path, result: dict[str, Any]) -> None:
        await run_rollover(opts, workdir, result)

    result = await bounded_run("boards-rollover", opts, measured, within=opts.timeout)
    result["checks"] = rollover_checks(result, opts)
    result["targets"] = rollover_targets(result)
    return result
