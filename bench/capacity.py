"""Closed-loop capacity: C connections back to back on one route at a time (wrk when installed,
the Python client otherwise), each with the server's CPU per answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from . import wrk
from .load import RouteStats, call, closed_loop
from .options import Options
from .usage import cpu_seconds


@dataclass(frozen=True)
class Route:
    """One route's closed loop: its requests as (bearer, body), cycled, or each sent `once`."""

    name: str
    method: str
    path: str
    requests: Sequence[tuple[str | None, bytes | None]] = ((None, None),)
    once: bool = False


SETTLE_POLL = 0.1  # seconds between looks at the server's CPU while it settles
SETTLE_IDLE = 0.05  # a share of one core below which the server counts as idle
# Idle this long: longer than the server's own periodic work waits (the audit sealer, every 1 s).
SETTLE_QUIET = 1.5
SETTLE_MAX = 10.0  # seconds at most


async def settle(pid: int) -> float:
    """Wait until the server has been idle (below SETTLE_IDLE of a core) for SETTLE_QUIET seconds,
    SETTLE_MAX at most: the work it put off until after its answers is done. The seconds waited."""
    started = quiet_since = time.perf_counter()
    last = cpu_seconds(pid)
    while (now := time.perf_counter()) - quiet_since < SETTLE_QUIET and now - started < SETTLE_MAX:
        await asyncio.sleep(SETTLE_POLL)
        used = cpu_seconds(pid)
        if used - last >= SETTLE_IDLE * SETTLE_POLL:
            quiet_since = time.perf_counter()
        last = used
    return time.perf_counter() - started


async def costed(pid: int, run: Awaitable[dict[str, Any]], *, settled: bool = False) -> dict[str, Any]:
    """A closed loop's summary with the server's CPU per answer (its process tree, user + system):
    on a shared box it moves far less between runs than the throughput does. `settled`: the CPU
    of the work the answers put off (notices, sealing) counts too, up to when the server is idle."""
    before = cpu_seconds(pid)
    summary = await run
    if settled:
        summary["settle_seconds"] = round(await settle(pid), 2)
    if summary.get("sent"):
        summary["server_cpu_us_per_request"] = round(1e6 * (cpu_seconds(pid) - before) / summary["sent"], 1)
    return summary


async def measure(
    opts: Options, session: aiohttp.ClientSession, base: str, pid: int, routes: Sequence[Route]
) -> dict[str, Any]:
    """Each route in turn at `opts.concurrency` for `opts.capacity_seconds`."""
    result: dict[str, Any] = {"concurrency": opts.concurrency}
    for route in routes:
        result[route.name] = await costed(pid, _closed_loop(opts, session, base, route))
    return result


async def _closed_loop(opts: Options, session: aiohttp.ClientSession, base: str, route: Route) -> dict[str, Any]:
    if wrk.available():
        lines = [wrk.request_line(route.method, route.path, bearer, body or b"") for bearer, body in route.requests]
        return await wrk.closed_loop(
            base, lines, connections=opts.concurrency, seconds=opts.capacity_seconds, once=route.once
        )
    stats = RouteStats()

    async def request(i: int) -> None:
        bearer, body = route.requests[i % len(route.requests)]
        await call(session, stats, route.method, base + route.path, body=body, bearer=bearer)

    limit = len(route.requests) if route.once else None
    return stats.summary(await closed_loop(opts.concurrency, opts.capacity_seconds, request, limit=limit))
