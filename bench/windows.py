"""`python -m bench windows`: N entries written into a fresh database, M WebSocket clients each
signed in as a user of the board and holding that user's `around` window (or, to compare, the
top 10 of the `leaderboard` channel, or nothing: the cost of the awards alone), awards at an open-loop rate through initialize + update;
commit -> client for every window an award changed, messages delivered, server CPU per award."""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from . import profile
from .bigdata import DEFAULT_BOARD, Population, clean_up, prepare, serve, shelves_for, storage_for
from .bounded import bounded_run
from .clients import SUBSCRIBE, ClientPool
from .load import (
    HOT_PLAYERS,
    UPDATE,
    RouteStats,
    Schedule,
    call,
    closed_loop,
    completes,
    issue_tokens,
    plan_awards,
    user_token,
)
from .replay import Reference, State, award_lines, replay
from .runner import _neighbours, _session
from .server import HOST, JWT_SECRET, ServerProcess, catalog, free_port
from .usage import UsageGroup, cpu_seconds, rss_bytes
from .windowclients import Finish, WindowSpec, merge, window_client_main

CHANNELS = ("around", "leaderboard", "none")
TOKEN_TTL = 7200
READ_CONCURRENCY = 16  # the final GET /around of every client's user
SETTLE_SLICE = 0.1  # seconds: the server is done with the load once a slice uses under SETTLE_SHARE of a core
SETTLE_SHARE = 0.05
SETTLE_WITHIN = 30.0
PROBE_RATE = 20.0  # GET /healthz per second during the load: a stall of the server's event loop shows there


@dataclass(frozen=True)
class WindowsOptions:
    """One `windows` run."""

    users: int = 100_000  # entries on the board
    clients: int = 10_000  # connections, each signed in as its own user of the board
    rate: float = 200.0  # awards per second, open loop
    duration: float = 20.0
    radius: int = 5
    channel: str = "around"  # or "leaderboard" (the top 10) or "none" (connected, nothing subscribed), to compare
    mode: str = "embedded"
    client_procs: int = 2
    hot_share: float = 0.01  # share of awards to the 20 leading players, so the top 10 moves too
    drain: float = 30.0  # seconds the clients may take to show the final state
    seed: int = 1
    profile: bool = False  # py-spy the server during the load
    timeout: float = 900.0
    out: Path = Path("bench/results/windows")


def pick_users(population: Population, opts: WindowsOptions) -> tuple[list[str], list[str]]:
    """The clients' users, spread over the board; the awarded users: the 20 leaders first (the hot
    share goes to them), then distinct users drawn over the whole board."""
    rng = random.Random(f"{opts.seed}/users")
    owners = [population.user_id(i) for i in rng.sample(range(len(population)), opts.clients)]
    hot = [population.at_rank(r) for r in range(1, min(HOT_PLAYERS, len(population)) + 1)]
    leaders = set(hot)
    rest = [i for i in range(len(population)) if i not in leaders]
    wanted = min(len(rest), math.floor(opts.rate * opts.duration))
    return owners, [population.user_id(i) for i in hot + rng.sample(rest, wanted)]


def subscribe_message(opts: WindowsOptions) -> bytes:
    if opts.channel == "leaderboard":
        return SUBSCRIBE
    if opts.channel == "none":
        return b""
    return msgspec.json.encode({"type": "subscribe", "channel": "around", "radius": opts.radius})


class _Row(msgspec.Struct):
    rank: int
    userId: str
    score: int


class _Rows(msgspec.Struct):
    entries: list[_Row] | None = None  # GET /around
    leaderboard: list[_Row] | None = None  # GET /top


class _Reply(msgspec.Struct):
    data: _Rows


_decode_rows = msgspec.json.Decoder(_Reply).decode


def _state(payload: bytes) -> State:
    data = _decode_rows(payload).data
    return tuple((r.rank, r.userId, r.score) for r in (data.entries or data.leaderboard or ()))


async def final_states(
    session: aiohttp.ClientSession, base: str, owners: list[str], opts: WindowsOptions
) -> tuple[dict[str, State | None], dict[str, Any]]:
    """What each client should show at the end, as the REST routes answer: the user's
    GET /around (radius R), or GET /top for all."""
    stats = RouteStats()
    board = f"{base}/api/v1/boards/{DEFAULT_BOARD}"
    if opts.channel == "none":
        return {}, stats.summary()
    if opts.channel == "leaderboard":
        payload = await call(session, stats, "GET", f"{board}/top?limit=10")
        top = None if payload is None else _state(payload)
        return dict.fromkeys(owners, top), stats.summary()
    found: dict[str, State | None] = dict.fromkeys(owners)

    async def read(n: int) -> None:
        user = owners[n]
        payload = await call(session, stats, "GET", f"{board}/around/{user}?radius={opts.radius}")
        if payload is not None:
            found[user] = _state(payload)

    await closed_loop(READ_CONCURRENCY, opts.timeout, read, limit=len(owners))
    return found, stats.summary()


async def settle(pid: int) -> tuple[float, float]:
    """Wait until the server is done with what the load caused (a slice of SETTLE_SLICE seconds
    under SETTLE_SHARE of a core, or SETTLE_WITHIN); (its CPU seconds, monotonic time) then."""
    deadline = time.monotonic() + SETTLE_WITHIN
    used = cpu_seconds(pid)
    while True:
        await asyncio.sleep(SETTLE_SLICE)
        now, then = cpu_seconds(pid), used
        used = now
        if now - then < SETTLE_SHARE * SETTLE_SLICE or time.monotonic() > deadline:
            return used, time.monotonic()


def finish_message(opts: WindowsOptions, reference: Reference, expected: dict[str, State | None]) -> Finish:
    shared = (
        None if opts.channel == "around" else reference.changed.get("*", []) if opts.channel == "leaderboard" else []
    )
    return Finish(
        expected=expected,
        timeout=opts.drain,
        first_seen=reference.first_seen,
        commits=reference.commits,
        changed={} if shared is not None else reference.changed,
        shared=shared,
    )


async def load(opts: WindowsOptions, server: ServerProcess, population: Population, result: dict[str, Any]) -> None:
    """Clients in, awards at the open-loop rate, then the final states and the replay; `result`
    is filled as the phases end."""
    owners, awarded = pick_users(population, opts)
    base, pid = server.url, server.pid
    bearers = [user_token(JWT_SECRET, user, TOKEN_TTL) for user in awarded]
    awards = plan_awards(bearers, math.floor(opts.rate * opts.duration), sorted(catalog()), opts.seed, opts.hot_share)
    async with _session() as session:
        started = time.perf_counter()
        issued = await issue_tokens(session, base, awards, concurrency=32)
        result["prepare"] = issued.summary(time.perf_counter() - started)
        if issued.statuses.get("200", 0) != len(awards):
            raise RuntimeError(f"could not issue the action tokens: {issued.summary()}")
        tokens: list[str | None] = [user_token(JWT_SECRET, user, TOKEN_TTL) for user in owners]
        spec = WindowSpec(
            HOST,
            server.port,
            "/ws/scoreboard",
            tokens,
            opts.channel != "none",
            subscribe=subscribe_message(opts),
            users=owners,
        )
        rss_idle = rss_bytes(pid)
        async with ClientPool(spec, opts.client_procs, target=window_client_main) as pool:
            started = time.perf_counter()
            result["connections"] = await pool.start()
            result["connections"]["seconds_to_all_snapshots"] = round(time.perf_counter() - started, 2)
            await asyncio.sleep(0.5)  # let the server settle its buffers before measuring memory
            opened = max(1, result["connections"]["connected"])
            result["connections"]["rss_kib_per_connection"] = round((rss_bytes(pid) - rss_idle) / 1024 / opened, 1)

            updates = Schedule(opts.rate, opts.duration)

            sampler = UsageGroup(_neighbours(pid, pool.pids))
            cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
            sampler.start()
            spy = (
                await profile.start(pid, opts.duration, opts.out / "profile.folded", subprocesses=False)
                if opts.profile
                else None
            )
            start = time.perf_counter() + 0.2
            probes = Schedule(PROBE_RATE, opts.duration)
            slow_probe = [0.0, 0.0]  # latency ms, seconds after the start

            async def probe(_: int, at: float) -> None:
                await call(session, probes.stats, "GET", base + "/healthz", started=at)
                ms = 1000 * (time.perf_counter() - at)
                if ms > slow_probe[0]:
                    slow_probe[:] = [ms, at - start]

            award = completes(session, updates.stats, base, awards)
            await asyncio.gather(updates.run(start, award), probes.run(start, probe))
            load_seconds = time.perf_counter() - start
            usage = await sampler.stop()
            cpu_after, wall_after = await settle(pid)
            if opts.profile:
                result["profile_error"] = await profile.finish(spy)
                if result["profile_error"] is None:
                    result["profile"] = profile.top_entries(opts.out / "profile.folded")
            answered = updates.stats.statuses.get("200", 0)
            result["open_loop"] = {
                "seconds": round(load_seconds, 2),
                "scheduled_awards": updates.count,
                "generator_max_lag_ms": round(updates.max_lag_ms, 2),
                "generator_dropped": updates.dropped,
                UPDATE: updates.stats.summary(load_seconds),
                "GET /healthz": probes.stats.summary(load_seconds),
                "slowest_healthz": {"ms": round(slow_probe[0], 1), "at_s": round(slow_probe[1], 2)},
            }
            result["usage"], result["usage_others"] = usage.pop("server"), usage
            result["server_cpu"] = {
                "seconds": round(cpu_after - cpu_before, 3),
                "wall_seconds": round(wall_after - wall_before, 2),  # from the first award until it settled
                "us_per_award": round(1e6 * (cpu_after - cpu_before) / answered, 1) if answered else None,
            }

            placed = award_lines(server.log_path or Path())
            result["award_lines"] = len(placed)
            reference = replay(population, owners, opts.radius if opts.channel == "around" else None, placed)
            started = time.perf_counter()
            expected, reads = await final_states(session, base, owners, opts)
            result["final_reads"] = {**reads, "seconds": round(time.perf_counter() - started, 2)}
            result["replay"] = {
                "awards": len(reference.commits) - 1,
                "inconsistent": reference.inconsistent,
                "states": len(reference.first_seen),
                "window_changes": sum(len(v) for v in reference.changed.values()),
                "final_matches_server": sum(1 for u in owners if reference.final.get(u) == expected.get(u)),
            }
            finish = finish_message(opts, reference, expected)
            replies = await pool.exchange([("finish", finish)] * pool.processes, opts.drain + 120)
            ws = merge([r for _, r in replies])
    latency, slowest = ws.pop("latency"), ws.pop("slowest")
    updates_per_second = ws["updates"] / load_seconds if load_seconds > 0 else 0.0
    result["websocket"] = {
        **ws,
        "delivered_per_second": round(updates_per_second, 1),
        "commit_to_client_ms": latency["every"].summary(),
        "newest_award_to_client_ms": latency["newest"].summary(),
        "updated_at_to_client_ms": latency["updated_at"].summary(),
        "slowest_awards": slowest_awards(slowest, reference.commits),
    }


def slowest_awards(slowest: dict[int, float], commits: list[float], count: int = 8) -> list[dict[str, Any]]:
    """The awards whose last window was reached latest: when each committed (seconds after the
    first award) and how long its slowest window took; one stall shows as a run of them."""
    first = commits[1] if len(commits) > 1 else 0.0
    worst = sorted(slowest.items(), key=lambda item: -item[1])[:count]
    return [{"award": k, "committed_at_s": round(commits[k] - first, 3), "ms": round(ms, 1)} for k, ms in worst]


async def measure(opts: WindowsOptions, workdir: Path, result: dict[str, Any]) -> None:
    """Build the board, start the server on it, load it, stop it, remove its storage."""
    started = time.perf_counter()
    shelves = shelves_for(opts.users, opts.seed, [DEFAULT_BOARD])
    population = shelves[0].population
    place = storage_for(opts.mode, workdir)
    try:
        await prepare(opts.mode, opts.users, shelves, place)
        del shelves
        result["build_seconds"] = round(time.perf_counter() - started, 2)
        port = free_port()
        server = serve(place, workdir, port=port, token_ttl=TOKEN_TTL)
        server.log_path = opts.out / "scoreboard.log"
        result["server"] = {"port": port}
        try:
            await server.astart(within=120)
            await load(opts, server, population, result["server"])
        finally:
            result["server"]["exit_code"] = await server.astop()
    finally:
        result["clean_up"] = await clean_up(place)


def checks(result: dict[str, Any], opts: WindowsOptions) -> dict[str, bool]:
    """Correctness only: these decide the exit code; speed never does."""
    server = result.get("server") or {}
    ws = server.get("websocket") or {}
    awards = ((server.get("open_loop") or {}).get(UPDATE)) or {}
    scheduled = (server.get("open_loop") or {}).get("scheduled_awards")
    final = ws.get("final_states") or {}
    rep = server.get("replay") or {}
    found = {
        "every_client_connected": ws.get("connected") == opts.clients and not ws.get("connect_errors"),
        "every_award_answered_200": bool(scheduled) and awards.get("ok") == scheduled and not awards.get("errors"),
        "every_award_logged_and_replayed": server.get("award_lines") == scheduled == rep.get("awards")
        and rep.get("inconsistent") == 0,
        "no_seq_gap_no_close": ws.get("seq_gaps") == 0 and not ws.get("closed_early"),
        "server_stopped_cleanly": server.get("exit_code") == 0,
    }
    if opts.channel == "none":  # nothing subscribed: no window to check
        return found
    return found | {
        "every_client_got_its_snapshot_first": ws.get("snapshot_first") == opts.clients
        and final.get("no_snapshot") == 0,
        "replay_matches_the_server_at_the_end": rep.get("final_matches_server") == opts.clients,
        "every_window_equals_the_rest_answer_at_the_end": final.get("matching") == opts.clients,
        "every_state_shown_is_one_the_board_passed_through": ws.get("unmatched_states") == 0,
        "every_window_change_reached_its_client": ws.get("changes_never_shown") == 0,
    }


async def run(opts: WindowsOptions) -> dict[str, Any]:
    """The whole run, bounded by `opts.timeout`; the result, written nowhere yet."""

    async def measured(workdir: Path, result: dict[str, Any]) -> None:
        await measure(opts, workdir, result)

    result = await bounded_run("windows", opts, measured, within=opts.timeout)
    result["checks"] = checks(result, opts)
    return result
