"""`python -m bench boards rollover`: a board of N entries whose period ends during the run, under a
closed loop of awards and reads; the latency around the boundary against the latency before it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from app.boards.periods import Schedule

from .bigdata import Shelf, Storage, clean_up, prepare, serve, shelves_for, storage_for
from .boards import INITIALIZE_PATH, TOKEN_TTL, UPDATE_PATH, client_session
from .bounded import bounded_run
from .load import RouteStats, call, user_token
from .server import HOST, JWT_SECRET, free_port
from .stats import Histogram
from .usage import rss_bytes

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


# Untracked by the collector: a run keeps every request's sample (370,000 in 90 s here), and as
# tracked objects each full collection of the bench walked them all, a pause of up to 0.25 s that
# every request in flight then counted as the server's.
class _Sample(msgspec.Struct, frozen=True, gc=False):
    """One request: when it started (wall clock), its latency, whether it was answered."""

    at: float
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

    async with client_session(limit=opts.awarders + opts.readers + 4) as session:

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
    async with client_session(limit=1) as session:
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
