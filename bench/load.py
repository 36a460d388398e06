"""HTTP load: action tokens issued beforehand, open-loop schedules, and closed-loop capacity runs."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
import msgspec

from .stats import Histogram

UPDATE = "POST /api/v1/scoreboard/update"
INITIALIZE = "POST /api/v1/actions/initialize"
TOP = "GET /api/v1/scoreboard/top"
MAX_IN_FLIGHT = 4096  # an overloaded server must not make the generator grow without bound
JSON = {"Content-Type": "application/json"}


def user_token(secret: str, user_id: str, ttl: int) -> str:
    """A user JWT as the identity system would issue it (HS256, sub/exp/name)."""
    now = int(time.time())
    return jwt.encode({"sub": user_id, "exp": now + ttl, "iat": now, "name": f"Bench {user_id}"}, secret, "HS256")


@dataclass
class RouteStats:
    """Latency and outcomes of one route."""

    latency: Histogram = field(default_factory=Histogram)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    sent: int = 0

    def summary(self, seconds: float | None = None) -> dict[str, Any]:
        ok = self.statuses.get("200", 0)
        out = {
            "sent": self.sent,
            "ok": ok,
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
            "latency_ms": self.latency.summary(),
        }
        if seconds:
            out["ok_per_second"] = round(ok / seconds, 1)
        return out


@dataclass
class Award:
    """One award to make: the bearer, the pre-issued action token and its action id."""

    bearer: str
    action_id: str
    token: str = ""
    body: bytes = b""


_error_code = msgspec.json.Decoder(dict[str, Any]).decode


async def call(
    session: aiohttp.ClientSession,
    stats: RouteStats,
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    bearer: str | None = None,
    started: float | None = None,
) -> bytes | None:
    """One request; latency from `started` (the scheduled time in open loop) to the full body."""
    # perf_counter, not loop.time(): uvloop's clock has whole-millisecond steps.
    started = time.perf_counter() if started is None else started
    headers = dict(JSON) if body is not None else {}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    stats.sent += 1
    try:
        async with session.request(method, url, data=body, headers=headers) as resp:
            payload = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        stats.errors[type(exc).__name__] += 1
        stats.latency.record(1000 * (time.perf_counter() - started))
        return None
    stats.latency.record(1000 * (time.perf_counter() - started))
    stats.statuses[str(status)] += 1
    if status != 200:
        try:
            code = _error_code(payload).get("error", {}).get("code", "?")
        except msgspec.DecodeError:
            code = "not JSON"
        stats.errors[f"{status} {code}"] += 1
        return None
    return payload


class _Issued(msgspec.Struct):
    actionToken: str


class _InitReply(msgspec.Struct):
    data: _Issued


_decode_init = msgspec.json.Decoder(_InitReply).decode


HOT_PLAYERS = 20


def plan_awards(
    bearers: Sequence[str], count: int, action_types: Sequence[str], seed: int, hot_share: float = 0.0
) -> list[Award]:
    """`count` awards: a `hot_share` to 20 leading players (so the top 10 keeps moving and every
    award can start a wave), the rest round-robin over all users; a fixed seed, not a secret."""
    rng = random.Random(seed)
    awards = []
    hot = min(HOT_PLAYERS, len(bearers))
    for i in range(count):
        user = rng.randrange(hot) if rng.random() < hot_share else i % len(bearers)
        award = Award(bearer=bearers[user], action_id=f"bench-{i}")
        award.body = msgspec.json.encode({"actionType": rng.choice(action_types), "actionId": award.action_id})
        awards.append(award)
    return awards


async def issue_tokens(
    session: aiohttp.ClientSession, base: str, awards: list[Award], concurrency: int = 64
) -> RouteStats:
    """Initialize every planned award, so the timed phase only completes them."""
    stats = RouteStats()
    queue = iter(awards)

    async def worker() -> None:
        for award in queue:
            payload = await call(
                session, stats, "POST", base + "/api/v1/actions/initialize", body=award.body, bearer=award.bearer
            )
            if payload is not None:
                award.token = _decode_init(payload).data.actionToken
                award.body = msgspec.json.encode({"actionToken": award.token, "actionId": award.action_id})

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return stats


def completes(
    session: aiohttp.ClientSession, stats: RouteStats, base: str, awards: Sequence[Award]
) -> Callable[[int, float], Awaitable[None]]:
    """Schedule.run's request for planned awards: `update` of award i with its issued token, its
    latency counted from its scheduled start `at`."""

    async def award(i: int, at: float) -> None:
        a = awards[i]
        await call(session, stats, "POST", base + "/api/v1/scoreboard/update", body=a.body, bearer=a.bearer, started=at)

    return award


@dataclass
class Schedule:
    """Open loop: request i starts at start + i / rate, however long earlier ones take."""

    rate: float
    duration: float
    stats: RouteStats = field(default_factory=RouteStats)
    max_lag_ms: float = 0.0  # how late the generator started a request (its own overload)
    dropped: int = 0  # requests not started because MAX_IN_FLIGHT were pending

    @property
    def count(self) -> int:
        return int(self.rate * self.duration)

    async def run(self, start: float, request: Callable[[int, float], Awaitable[object]]) -> None:
        pending: set[asyncio.Task[object]] = set()
        for i in range(self.count):
            at = start + i / self.rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            self.max_lag_ms = max(self.max_lag_ms, 1000 * (time.perf_counter() - at))
            if len(pending) >= MAX_IN_FLIGHT:
                self.dropped += 1
                continue
            task = asyncio.ensure_future(request(i, at))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)


async def closed_loop(
    concurrency: int, seconds: float, request: Callable[[int], Awaitable[object]], limit: int | None = None
) -> float:
    """`concurrency` workers back to back for `seconds` (or `limit` requests); the elapsed time."""
    started = time.perf_counter()
    deadline = started + seconds
    counter = iter(range(limit if limit is not None else 10**12))

    async def worker() -> None:
        for i in counter:
            if time.perf_counter() >= deadline:
                return
            await request(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started
