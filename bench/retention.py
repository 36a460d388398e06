"""`python -m bench retention`: a history of N old awards purged by `storage.history_retention_days`
while a closed loop of awards goes on, in process on the store: how long the purge takes, its
windows, and the awards' latency during the purge against the same loop without it. SQLite by
default; `--postgres` for the PostgreSQL on 127.0.0.1 (a scratch schema, dropped afterwards)."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the app beside it, unless PYTHONPATH names another
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from app.records import AwardClaim, BoardPeriod, TokenGrant
from app.retention import DAY_MS, Retention
from app.storage import Store
from app.storage.postgres import PostgresStore
from app.storage.sqlite import SqliteStore
from bench.storage import create_schema, drop_schema, unique_name

GLOBAL = BoardPeriod(board="global", period="all")
NOW = 30 * DAY_MS  # the history is dated a day after the epoch, the awards under test a month later


async def _fill(store: Store, awards: int, users: int) -> None:
    """`awards` old awards spread over `users` players, through the store as the service writes them."""

    async def one(i: int) -> None:
        user = f"u{i % users}"
        await store.grant(_grant(f"old{i}", user, DAY_MS + i))
        await store.award(_claim(f"old{i}", user, DAY_MS + i + 1))

    for start in range(0, awards, 200):
        await asyncio.gather(*(one(i) for i in range(start, min(start + 200, awards))))


def _grant(nonce: str, user: str, at: int) -> TokenGrant:
    return TokenGrant(
        nonce=nonce,
        token_hash=f"h-{nonce}",
        user_id=user,
        username=user.upper(),
        action_type="T",
        action_id=nonce,
        score_increment=1,
        issued_ms=at,
        expires_ms=at + 300_000,
    )


def _claim(nonce: str, user: str, at: int) -> AwardClaim:
    return AwardClaim(
        nonce=nonce,
        user_id=user,
        username=user.upper(),
        action_type="T",
        action_id=nonce,
        min_elapsed_ms=0,
        now_ms=at,
        boards=(GLOBAL,),
    )


async def _award_loop(store: Store, tag: str, users: int, workers: int, stop: asyncio.Event) -> list[float]:
    """Awards by `workers` closed-loop workers until `stop`; each award's milliseconds."""
    latencies: list[float] = []

    async def worker(w: int) -> None:
        n = 0
        while not stop.is_set():
            nonce, user = f"{tag}-{w}-{n}", f"u{(w * 7919 + n) % users}"
            await store.grant(_grant(nonce, user, NOW))
            start = time.perf_counter()
            await store.award(_claim(nonce, user, NOW + 1))
            latencies.append((time.perf_counter() - start) * 1000)
            n += 1

    await asyncio.gather(*(worker(w) for w in range(workers)))
    return latencies


def _summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "awards": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1], 2),
        "max_ms": round(ordered[-1], 2),
    }


async def measure(store: Store, awards: int, users: int, workers: int, quiet_seconds: float) -> dict[str, Any]:
    """Fill, time the loop alone, then purge under the loop."""
    await _fill(store, awards, users)
    stop = asyncio.Event()
    loop = asyncio.create_task(_award_loop(store, "quiet", users, workers, stop))
    await asyncio.sleep(quiet_seconds)
    stop.set()
    quiet = await loop

    windows = 0
    sweeps = (store.sweep_changes, store.sweep_awards)

    def counted(sweep: Any) -> Any:
        async def run(cursor: int, before_ms: int) -> Any:
            nonlocal windows
            windows += 1
            return await sweep(cursor, before_ms)

        return run

    retention = Retention(store, 1, lambda: NOW)
    retention.cursors = {counted(sweep): 0 for sweep in sweeps}
    stop = asyncio.Event()
    loop = asyncio.create_task(_award_loop(store, "purge", users, workers, stop))
    start, deleted = time.perf_counter(), 0
    while rows := await retention.purge():
        deleted += rows
    seconds = time.perf_counter() - start
    stop.set()
    during = await loop
    return {
        "history_awards": awards,
        "rows_deleted": deleted,
        "purge_seconds": round(seconds, 2),
        "windows": windows,
        "awards_alone": _summary(quiet),
        "awards_during_purge": _summary(during),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """The measurement on the chosen store, in a scratch schema or file removed afterwards."""
    if args.postgres:
        schema = unique_name("retention")
        store: Store = PostgresStore(await create_schema(schema), pool_size=args.workers + 2)
    else:
        scratch = tempfile.TemporaryDirectory()
        store = SqliteStore(str(Path(scratch.name) / "retention.db"))
    await store.open()
    try:
        return await measure(store, args.awards, args.users, args.workers, args.quiet_seconds)
    finally:
        await store.close()
        if args.postgres:
            await drop_schema(schema)
        else:
            scratch.cleanup()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench retention", description=__doc__)
    p.add_argument("--awards", type=int, default=100_000, help="old awards in the history (default %(default)s)")
    p.add_argument("--users", type=int, default=1000, help="players they went to (default %(default)s)")
    p.add_argument("--workers", type=int, default=8, help="closed-loop award workers (default %(default)s)")
    p.add_argument("--quiet-seconds", type=float, default=5.0, help="the loop alone, for comparison")
    p.add_argument("--postgres", action="store_true", help="PostgreSQL on 127.0.0.1 instead of SQLite")
    print(json.dumps(asyncio.run(run(p.parse_args(argv))), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
