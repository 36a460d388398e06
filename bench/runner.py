"""One benchmark run: the Scoreboard under open-loop load, then the bare baselines, then the ratios."""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from . import capacity, profile, storage
from .clients import ClientPool, ClientSpec
from .load import (
    INITIALIZE,
    TOP,
    UPDATE,
    RouteStats,
    Schedule,
    call,
    completes,
    issue_tokens,
    plan_awards,
    user_token,
)
from .options import Options
from .server import (
    BENCH_LIMITS,
    HOST,
    JWT_SECRET,
    baseline_process,
    catalog,
    free_port,
    ruled_catalog,
    scoreboard_process,
)
from .stats import ratio
from .usage import UsageGroup, UsageSampler, by_name, machine, rss_bytes


class _TopEntry(msgspec.Struct):
    rank: int
    userId: str
    score: int


class _TopData(msgspec.Struct):
    leaderboard: list[_TopEntry]


class _TopReply(msgspec.Struct):
    data: _TopData


def _session(limit: int = 512) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, force_close=False),
        timeout=aiohttp.ClientTimeout(total=30),
    )


async def _scrape(url: str, opts: Options, took: list[float]) -> None:
    """With --metrics, scrape the server as Prometheus would, for as long as the load runs."""
    if not opts.metrics:
        return
    async with _session(limit=1) as session:
        while True:
            await asyncio.sleep(opts.scrape_seconds)
            started = time.perf_counter()
            async with session.get(url) as resp:
                await resp.read()
                if resp.status == 200:
                    took.append(time.perf_counter() - started)


def _neighbours(server: int, clients: list[int]) -> dict[str, tuple[int, bool]]:
    """The server and what competes with it for the same cores: Redis, PostgreSQL, the bench itself."""
    pids = {"server": (server, True), "bench generator": (os.getpid(), False)}
    for i, pid in enumerate(clients):
        pids[f"bench clients {i}"] = (pid, False)
    for name in ("redis-server", "postgres"):
        found = by_name(name)
        if found is not None:
            pids[name] = (found, name == "postgres")  # postgres: the postmaster and its backends
    return pids


def _delivered(ws: dict[str, Any], seconds: float) -> float:
    return round(ws["live_updates"] / seconds, 1) if seconds > 0 else 0.0


def _ws_summary(ws: dict[str, Any], seconds: float) -> dict[str, Any]:
    return {
        "connected": ws["connected"],
        "connect_errors": ws["connect_errors"],
        "closed_early": ws["closed_early"],
        "messages_by_type": ws["by_type"],
        "live_updates": ws["live_updates"],
        "min_live_updates_per_client": ws["min_live_updates_per_client"],
        "delivered_per_second": _delivered(ws, seconds),
        "latency_ms": ws["latency"].summary(),
        "converged": ws["converged"],
        "converge_seconds": ws["converge_seconds"],
        "boards": ws["boards"],
    }


async def run_scoreboard(opts: Options, out: Path, workdir: Path) -> dict[str, Any]:
    """Start the server in the chosen mode, load it, measure, stop it, clean its storage."""
    redis_url = database_url = prefix = schema = None
    if opts.mode in ("redis", "postgres"):
        if not await storage.redis_reachable():
            raise RuntimeError(f"{opts.mode} mode needs Redis at {storage.REDIS_URL}")
        redis_url, prefix = storage.REDIS_URL, storage.unique_name("sb")
    if opts.mode == "postgres":
        schema = storage.unique_name("sb")
        database_url = await storage.create_schema(schema)
    port = free_port()
    base = f"http://{HOST}:{port}"
    token_ttl = int(opts.duration + 600)
    metrics_port = free_port() if opts.metrics else None
    server = scoreboard_process(
        workdir,
        port=port,
        redis_url=redis_url,
        database_url=database_url,
        redis_prefix=prefix,
        token_ttl=token_ttl,
        workers=opts.workers,
        metrics_port=metrics_port,
        actions=ruled_catalog() if opts.rules else None,
    )
    (out / "scoreboard.log").unlink(missing_ok=True)
    server.log_path = out / "scoreboard.log"
    result: dict[str, Any] = {"mode": opts.mode, "port": port}
    scrapes: list[float] = []
    try:
        await server.astart()
        scraping = asyncio.create_task(_scrape(f"http://{HOST}:{metrics_port}/metrics", opts, scrapes))
        try:
            result |= await _load_scoreboard(opts, out, base, server.pid, token_ttl)
        finally:
            scraping.cancel()
        if scrapes:
            result["metrics_scrapes"] = {"count": len(scrapes), "max_ms": round(max(scrapes) * 1000, 1)}
    finally:
        result["server_exit_code"] = await server.astop()
        if prefix is not None:
            result["redis_keys_removed"] = await storage.drop_redis_prefix(prefix)
        if schema is not None:
            await storage.drop_schema(schema)
    return result


async def _load_scoreboard(opts: Options, out: Path, base: str, pid: int, token_ttl: int) -> dict[str, Any]:
    bearers = [user_token(JWT_SECRET, f"player-{i}", token_ttl) for i in range(opts.users)]
    scheduled = math.floor(opts.rate * opts.duration)
    extra = opts.capacity_awards if opts.capacity else 0
    awards = plan_awards(bearers, scheduled + extra, sorted(catalog()), opts.seed, opts.hot_share)
    result: dict[str, Any] = {}
    async with _session() as session:
        started = time.perf_counter()
        init = await issue_tokens(session, base, awards, opts.concurrency)
        result["prepare"] = {INITIALIZE: init.summary(time.perf_counter() - started)}
        if init.statuses.get("200", 0) != len(awards):
            raise RuntimeError(f"could not issue the action tokens: {init.summary()}")

        viewers = round(opts.clients * opts.auth_share)
        tokens: list[str | None] = [user_token(JWT_SECRET, f"viewer-{i}", token_ttl) for i in range(viewers)]
        tokens += [None] * (opts.clients - viewers)
        rss_idle = rss_bytes(pid)
        async with ClientPool(
            ClientSpec(HOST, int(base.rsplit(":", 1)[1]), "/ws/scoreboard", tokens, True), opts.client_procs
        ) as pool:
            opened = await pool.start()
            await asyncio.sleep(0.5)  # let the server settle its buffers before measuring memory
            rss_open = rss_bytes(pid)
            result["connections"] = {
                **opened,
                "rss_mib_before": round(rss_idle / 2**20, 1),
                "rss_mib_after": round(rss_open / 2**20, 1),
                "rss_kib_per_connection": round((rss_open - rss_idle) / 1024 / max(1, opened["connected"]), 1),
            }

            updates, reads = Schedule(opts.rate, opts.duration), Schedule(opts.read_rate, opts.duration)

            async def read(_: int, at: float) -> None:
                await call(session, reads.stats, "GET", base + "/api/v1/scoreboard/top", started=at)

            sampler = UsageGroup(_neighbours(pid, pool.pids))
            sampler.start()
            spy = (
                await profile.start(pid, opts.duration, out / "profile.folded", subprocesses=opts.workers > 1)
                if opts.profile
                else None
            )
            start = time.perf_counter() + 0.2
            award = completes(session, updates.stats, base, awards)
            await asyncio.gather(updates.run(start, award), reads.run(start, read))
            load_seconds = time.perf_counter() - start
            usage = await sampler.stop()
            result["usage"], result["usage_others"] = usage.pop("server"), usage
            if opts.profile:
                result["profile_error"] = await profile.finish(spy)
                if result["profile_error"] is None:
                    result["profile"] = profile.top_entries(out / "profile.folded")

            final = RouteStats()
            payload = await call(session, final, "GET", base + "/api/v1/scoreboard/top?limit=10")
            if payload is None:
                raise RuntimeError(f"final GET /top failed: {final.summary()}")
            board = [(e.rank, e.userId, e.score) for e in msgspec.json.decode(payload, type=_TopReply).data.leaderboard]
            ws = await pool.finish(board=board, within=opts.drain_seconds)
        result["final_board"] = board
        result["open_loop"] = {
            "seconds": round(load_seconds, 2),
            "scheduled_awards": updates.count,
            "scheduled_reads": reads.count,
            "generator_max_lag_ms": round(max(updates.max_lag_ms, reads.max_lag_ms), 2),
            "generator_dropped": updates.dropped + reads.dropped,
            UPDATE: updates.stats.summary(load_seconds),
            TOP: reads.stats.summary(load_seconds),
        }
        result["websocket"] = _ws_summary(ws, load_seconds)
        if opts.capacity:
            award_requests = [(a.bearer, a.body) for a in awards[scheduled:]]
            result["capacity"] = await capacity.measure(
                opts,
                session,
                base,
                pid,
                [
                    capacity.Route(UPDATE, "POST", "/api/v1/scoreboard/update", award_requests, once=True),
                    capacity.Route(TOP, "GET", "/api/v1/scoreboard/top"),
                ],
            )
    return result


HELLO = "GET /hello"
ZINCRBY = "POST /zincrby"
SINGLE_WAVES = 5


async def run_baselines(opts: Options, out: Path, workdir: Path, message_bytes: int) -> dict[str, Any]:
    """The bare app under the same clients and rates: hello, PyJWT + ZINCRBY, raw broadcast."""
    has_redis = await storage.redis_reachable()
    prefix = storage.unique_name("base")
    port = free_port()
    base = f"http://{HOST}:{port}"
    server = baseline_process(
        workdir, port=port, redis_url=storage.REDIS_URL if has_redis else None, redis_prefix=prefix
    )
    server.log_path = out / "baseline.log"
    result: dict[str, Any] = {"redis": has_redis, "message_bytes": message_bytes}
    try:
        await server.astart()
        result |= await _load_baseline(opts, base, server.pid, has_redis, message_bytes)
    finally:
        await server.astop()
        if has_redis:
            await storage.drop_redis_prefix(prefix)
    return result


async def _load_baseline(opts: Options, base: str, pid: int, has_redis: bool, message_bytes: int) -> dict[str, Any]:
    port = int(base.rsplit(":", 1)[1])
    spec = ClientSpec(HOST, port, "/ws", [None] * opts.clients, False)
    result: dict[str, Any] = {}
    async with _session() as session:
        # One wave at a time: how long one broadcast takes to reach the last of N clients.
        async with ClientPool(spec, opts.client_procs) as pool:
            result["connections"] = await pool.start()
            for _ in range(SINGLE_WAVES):
                await session.post(f"{base}/broadcast?n=1&size={message_bytes}")
                await asyncio.sleep(0.2)
            single = await pool.finish(count=SINGLE_WAVES, within=10)
        result["single_wave"] = _ws_summary(single, 0)
        # Back to back: the fan-out ceiling in delivered messages per second.
        waves = max(20, min(500, 200_000 // max(1, opts.clients)))
        async with ClientPool(spec, opts.client_procs) as pool:
            await pool.start()
            async with session.post(f"{base}/broadcast?n={waves}&size={message_bytes}") as resp:
                sent = await resp.json(content_type=None)
            burst = await pool.finish(count=waves, within=60)
        span = (burst["last_live"] or 0) - (burst["first_live"] or 0)
        result["burst"] = {
            "waves": waves,
            "server_write_seconds": round(sent["seconds"], 3),
            "receive_span_seconds": round(span, 3),
            **_ws_summary(burst, span),
        }

        bearers = [user_token(JWT_SECRET, f"player-{i}", 3600) for i in range(opts.users)]
        updates, reads = Schedule(opts.rate, opts.duration), Schedule(opts.read_rate, opts.duration)

        async def zincrby(i: int, at: float) -> None:
            await call(
                session,
                updates.stats,
                "POST",
                base + "/zincrby",
                body=b"{}",
                bearer=bearers[i % len(bearers)],
                started=at,
            )

        async def hello(_: int, at: float) -> None:
            await call(session, reads.stats, "GET", base + "/hello", started=at)

        sampler = UsageSampler(pid)
        sampler.start()
        start = time.perf_counter() + 0.2
        await asyncio.gather(*([updates.run(start, zincrby)] if has_redis else []), reads.run(start, hello))
        seconds = time.perf_counter() - start
        result["usage"] = await sampler.stop()
        result["open_loop"] = {
            "seconds": round(seconds, 2),
            ZINCRBY: updates.stats.summary(seconds),
            HELLO: reads.stats.summary(seconds),
        }
        if opts.capacity:
            zincrby_requests = [(b, b"{}") for b in bearers]
            routes = [capacity.Route(ZINCRBY, "POST", "/zincrby", zincrby_requests)] if has_redis else []
            routes.append(capacity.Route(HELLO, "GET", "/hello"))
            result["capacity"] = await capacity.measure(opts, session, base, pid, routes)
    return result


def _get(tree: dict[str, Any], *path: str) -> Any:
    node: Any = tree
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def ratios(sb: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The Scoreboard's numbers over the baselines' (same run, same clients, same rates)."""
    return {
        "award_throughput_vs_zincrby": ratio(
            _get(sb, "capacity", UPDATE, "ok_per_second"), _get(base, "capacity", ZINCRBY, "ok_per_second")
        ),
        "read_throughput_vs_hello": ratio(
            _get(sb, "capacity", TOP, "ok_per_second"), _get(base, "capacity", HELLO, "ok_per_second")
        ),
        # Inverted, so that like the throughputs more is better: the baseline's CPU per request over ours.
        "award_cpu_efficiency_vs_zincrby": ratio(
            _get(base, "capacity", ZINCRBY, "server_cpu_us_per_request"),
            _get(sb, "capacity", UPDATE, "server_cpu_us_per_request"),
        ),
        "read_cpu_efficiency_vs_hello": ratio(
            _get(base, "capacity", HELLO, "server_cpu_us_per_request"),
            _get(sb, "capacity", TOP, "server_cpu_us_per_request"),
        ),
        "award_p99_vs_zincrby_p99_open_loop": ratio(
            _get(sb, "open_loop", UPDATE, "latency_ms", "p99"), _get(base, "open_loop", ZINCRBY, "latency_ms", "p99")
        ),
        "read_p99_vs_hello_p99_open_loop": ratio(
            _get(sb, "open_loop", TOP, "latency_ms", "p99"), _get(base, "open_loop", HELLO, "latency_ms", "p99")
        ),
        "e2e_p99_vs_bare_wave_p99": ratio(
            _get(sb, "websocket", "latency_ms", "p99"), _get(base, "single_wave", "latency_ms", "p99")
        ),
        "delivered_at_this_load_vs_bare_fanout_ceiling": ratio(
            _get(sb, "websocket", "delivered_per_second"), _get(base, "burst", "delivered_per_second")
        ),
    }


def message_bytes(board: list[tuple[int, str, int]]) -> int:
    """The size of a leaderboard_update showing `board`, so the bare broadcast sends as much."""
    entries = [{"rank": r, "userId": u, "username": f"Bench {u}", "score": s, "change": "+100"} for r, u, s in board]
    message = {"type": "leaderboard_update", "data": {"leaderboard": entries, "updatedAt": "2000-01-01T00:00:00.000Z"}}
    return len(msgspec.json.encode(message))


def checks(sb: dict[str, Any], opts: Options) -> dict[str, bool]:
    """Correctness of the run, whatever its speed: every award and read answered 200, every client current."""
    ol, ws = sb.get("open_loop", {}), sb.get("websocket", {})
    update, top = ol.get(UPDATE, {}), ol.get(TOP, {})
    return {
        "every_award_200": bool(update) and update["ok"] == ol["scheduled_awards"] and not update["errors"],
        "every_read_200": bool(top) and top["ok"] == ol["scheduled_reads"] and not top["errors"],
        "generator_dropped_none": ol.get("generator_dropped", 1) == 0,
        "every_client_connected": ws.get("connected") == opts.clients and not ws.get("connect_errors"),
        "no_client_closed_early": not ws.get("closed_early"),
        "every_client_shows_final_board": bool(ws) and ws["boards"]["matching"] == opts.clients,
    }


async def run(opts: Options) -> dict[str, Any]:
    """The whole benchmark, bounded by the hard cap; the result written nowhere yet."""
    opts.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": machine(),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()},
        "limits_lifted": BENCH_LIMITS,
    }
    with tempfile.TemporaryDirectory(prefix="scoreboard-bench-") as tmp:
        workdir = Path(tmp)
        try:
            async with asyncio.timeout(opts.hard_cap_seconds):
                result["scoreboard"] = await run_scoreboard(opts, opts.out, workdir)
                result["checks"] = checks(result["scoreboard"], opts)
                if opts.baselines:
                    size = message_bytes(result["scoreboard"]["final_board"])
                    result["baselines"] = await run_baselines(opts, opts.out, workdir, size)
                    result["ratios"] = ratios(result["scoreboard"], result["baselines"])
            result["finished"] = True
        except TimeoutError:
            result["finished"] = False
            result["error"] = f"hard cap of {opts.hard_cap_seconds:.0f} s reached"
        except Exception as exc:  # reported in the result: the run stops, the clean-up above has run
            result["finished"] = False
            result["error"] = f"{type(exc).__name__}: {exc}"
    result["wall_seconds"] = round(time.time() - started, 1)
    return result
