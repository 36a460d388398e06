"""`python -m bench boards awards`: awards on three boards at once against awards on one, and both
against the bare PyJWT + ZINCRBY endpoint (reads against hello-world), alternated round by round on
the same servers; with the Redis round trips and database transactions each award made. (`python -m
bench boards rollover` is rollover.py.)"""

from __future__ import annotations

import contextlib
import random
import re
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import redis.asyncio as aioredis

from . import capacity, profile, storage, wrk
from .bounded import bounded_run
from .load import TOP, Award, issue_tokens, user_token
from .options import Options
from .runner import HELLO, ZINCRBY
from .server import HOST, JWT_SECRET, ServerProcess, baseline_process, free_port, scoreboard_process
from .stats import ratio
from .usage import stores_cpu_seconds

UPDATE_PATH = "/api/v1/scoreboard/update"
INITIALIZE_PATH = "/api/v1/actions/initialize"
ONE, THREE = "AWARD_ONE_BOARD", "AWARD_THREE_BOARDS"
TOP_ROUTE = capacity.Route(TOP, "GET", "/api/v1/scoreboard/top")
AWARD_BOARDS = {ONE: ["global"], THREE: ["global", "side-1", "side-2"]}
TOKEN_TTL = 7200


def client_session(limit: int = 256) -> aiohttp.ClientSession:
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
    # Who makes each award: "turns" (the players in turn, lockstep: a set-up that commits them in
    # the order they come passes nobody) or "random" (drawn at random, seeded: players tie at every
    # score and an award passes those still at the score it left, as in a game of fixed points).
    players: str = "turns"
    baselines: bool = True
    profile: bool = False  # py-spy the server over one more phase of each action and of the reads, after the timed ones
    timeout: float = 1800.0
    out: Path = Path("bench/results/boards-awards")


# The server's counts read around each phase, by what the report calls them (per award).
_COUNTED = {
    "scoreboard_redis_round_trip_seconds_count": "redis_round_trip",
    "scoreboard_database_round_trip_seconds_count": "database_round_trip",
    "scoreboard_overtake_notices_total": "overtake_notice",
    # Writes whose notices were skipped (MAX_PENDING pending): a phase that skipped them did less.
    "scoreboard_overtakes_skipped_total": "overtake_skip",
}


def _metric_counts(text: str) -> dict[str, float]:
    """The counts of `_COUNTED` in a Prometheus scrape (round-trip histograms, overtake notices and
    skips)."""
    found = {}
    for name, called in _COUNTED.items():
        match = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
        if match:
            found[called] = float(match.group(1))
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
    """What the server made per award: Redis round trips and commands, database transactions,
    overtake notices."""

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


def _plan(bearers: list[str], action: str, count: int, tag: str, players: str = "turns") -> list[Award]:
    """`count` awards of `action`, the players in turn or (`players="random"`) drawn by a generator
    seeded with `tag`."""
    pick = random.Random(tag)
    awards = []
    for i in range(count):
        player = pick.randrange(len(bearers)) if players == "random" else i % len(bearers)
        award = Award(bearer=bearers[player], action_id=f"{tag}-{i}")
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
    stores = stores_cpu_seconds()
    # Settled: what an award puts off until after its answer (its notices, the sealing of its
    # history rows) is its cost too, and must not run into the next phase.
    summary = await capacity.costed(pid, capacity._closed_loop(opts, session, base, route), settled=True)
    if summary.get("ok"):
        # Redis and PostgreSQL share the two cores with the server: their work per award is a cost
        # the server's CPU alone does not show (PostgreSQL's was more than the server's).
        summary["stores_cpu_us_per_award"] = round(1e6 * (stores_cpu_seconds() - stores) / summary["ok"], 1)
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

    def box_cpu(r: dict[str, Any], name: str) -> float | None:
        server, stores = cpu(r, name), (r.get(name) or {}).get("stores_cpu_us_per_award")
        return None if server is None or stores is None else server + stores

    return {
        "three_vs_one_boards_throughput": per_round(lambda r: ratio(rate(r, THREE), rate(r, ONE))),
        # Inverted, so that more is better as for throughput: one board's CPU per award over three's.
        "three_vs_one_boards_cpu_efficiency": per_round(lambda r: ratio(cpu(r, ONE), cpu(r, THREE))),
        "three_vs_one_boards_box_cpu_efficiency": per_round(lambda r: ratio(box_cpu(r, ONE), box_cpu(r, THREE))),
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
    """py-spy over one more phase of each action and of the reads (not part of the ratios)."""
    found: dict[str, Any] = {}
    for action in (ONE, THREE):
        phase = _award_phase(cap, session, base, server.pid, tokens[action], costs)
        found[action] = await _profiled(opts, server, action, 2 * opts.award_seconds, phase)
    cycled = Options(concurrency=opts.concurrency, capacity_seconds=opts.read_seconds)
    reads = capacity.costed(server.pid, capacity._closed_loop(cycled, session, base, TOP_ROUTE))
    found[TOP] = await _profiled(opts, server, "reads", 2 * opts.read_seconds, reads)
    return found


async def _profiled(
    opts: AwardsOptions, server: ServerProcess, name: str, seconds: float, phase: Awaitable[dict[str, Any]]
) -> dict[str, Any]:
    """One phase under py-spy, its folded stacks in `profile-<name>.folded`; the phase and the profile's top."""
    folded = opts.out / f"profile-{name.lower()}.folded"
    spy = await profile.start(server.pid, seconds, folded, subprocesses=False)
    done = await phase
    if spy is not None and spy.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            spy.send_signal(2)  # SIGINT: py-spy writes what it has
    error = await profile.finish(spy)
    return {
        "phase": done,
        "profile_error": error,
        "profile": profile.top_entries(folded) if error is None and folded.exists() else None,
    }


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
    async with client_session() as session:
        for r in range(opts.rounds):
            tokens = {a: _plan(bearers, a, opts.awards, f"r{r}-{a.lower()}", opts.players) for a in (ONE, THREE)}
            started = time.perf_counter()
            for awards in tokens.values():
                await _issue(session, base, awards)
            one: dict[str, Any] = {"issue_seconds": round(time.perf_counter() - started, 2)}
            # Alternate which goes first: a drift over the round favours neither.
            for action in (ONE, THREE) if r % 2 == 0 else (THREE, ONE):
                one[action] = await _award_phase(cap, session, base, server.pid, tokens[action], costs)
            one[TOP] = await capacity.costed(server.pid, capacity._closed_loop(cycled, session, base, TOP_ROUTE))
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
            tokens = {a: _plan(bearers, a, opts.awards, f"profile-{a.lower()}", opts.players) for a in (ONE, THREE)}
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
