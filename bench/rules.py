"""`python -m bench rules [...]`: what the cheat rules cost an award, in process: one user with a long
history (an award every `--step-ms` of the clock), then blocks of awards through the store without
rules and with all five (thresholds no award reaches), alternating; the median of each. A rule's
cost grows with the user's rows in its window, not with the history or the table."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from app.records import AwardClaim, BoardPeriod, HoldRules, TokenGrant, Velocity
from app.storage import Store
from app.storage.postgres import PostgresStore
from app.storage.sqlite import SqliteStore

from . import storage

ALL_FIVE = HoldRules(
    over_per_hour=10**6,
    over=(10**6, 60_000),
    within_ms=1,
    max_score_per_hour=2**53,
    velocity=Velocity(window_ms=60_000, windows=12, min_samples=1, z=1000.0),
)
BOARDS = (BoardPeriod(board="global", period="all"),)
START_MS = 1_800_000_000_000


class Awards:
    """Awards of one user through a store, the clock moving `step_ms` each."""

    def __init__(self, store: Store, step_ms: int) -> None:
        self.store = store
        self.step_ms = step_ms
        self.count = 0

    async def one(self, rules: HoldRules | None) -> float:
        """Grant a token and award it; the award's seconds (the grant not counted)."""
        self.count += 1
        now = START_MS + self.count * self.step_ms
        nonce, action_id = f"n{self.count}", f"a{self.count}"
        grant = TokenGrant(
            nonce=nonce,
            token_hash=f"h{self.count}",
            user_id="alice",
            username="Alice",
            action_type="A",
            action_id=action_id,
            score_increment=10,
            issued_ms=now - 1000,
            expires_ms=now + 60_000,
        )
        await self.store.grant(grant, max_unused=None)
        claim = AwardClaim(
            nonce=nonce,
            user_id="alice",
            username="Alice",
            action_type="A",
            action_id=action_id,
            min_elapsed_ms=0,
            now_ms=now,
            boards=BOARDS,
            rules=rules,
        )
        started = time.perf_counter()
        award = await self.store.award(claim)
        elapsed = time.perf_counter() - started
        if award.held is not None:
            raise RuntimeError("a rule held a bench award: its thresholds are meant to be out of reach")
        return elapsed


async def measure(store: Store, *, history: int, step_ms: int, rounds: int, block: int) -> dict[str, float]:
    """Median µs of an award without rules and with all five, after `history` awards."""
    awards = Awards(store, step_ms)
    for _ in range(history):
        await awards.one(None)
    times: dict[str, list[float]] = {"none": [], "all five": []}
    for i in range(rounds):
        order = [("none", None), ("all five", ALL_FIVE)]
        for name, rules in order if i % 2 == 0 else order[::-1]:
            times[name] += [await awards.one(rules) for _ in range(block)]
    return {name: round(statistics.median(t) * 1e6) for name, t in times.items()}


async def run(args: argparse.Namespace) -> dict[str, float]:
    """One measurement on a fresh SQLite file or PostgreSQL schema, removed afterwards."""
    sizes = {"history": args.history, "step_ms": args.step_ms, "rounds": args.rounds, "block": args.block}
    if args.mode == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = SqliteStore(str(Path(tmp) / "rules.db"))
            await sqlite.open()
            try:
                return await measure(sqlite, **sizes)
            finally:
                await sqlite.close()
    schema = storage.unique_name("rules")
    postgres = PostgresStore(await storage.create_schema(schema), pool_size=2)
    try:
        await postgres.open()
        try:
            return await measure(postgres, **sizes)
        finally:
            await postgres.close()
    finally:
        await storage.drop_schema(schema)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench rules", description=__doc__)
    p.add_argument("--mode", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--history", type=int, default=2000, help="awards of the user before the measured ones")
    p.add_argument("--step-ms", type=int, default=10_000, help="clock between two awards of the user")
    p.add_argument("--rounds", type=int, default=12, help="alternating blocks of each kind")
    p.add_argument("--block", type=int, default=50, help="awards per block")
    args = p.parse_args(argv)
    if min(args.history, args.rounds, args.block) < 0 or args.step_ms < 1 or args.block < 1:
        raise SystemExit("bench rules: sizes >= 0, --step-ms >= 1, --block >= 1")
    result = asyncio.run(run(args))
    print(
        f"{args.mode}, {args.history} awards of history {args.step_ms} ms apart: median award "
        + ", ".join(f"{name} {us} µs" for name, us in result.items())
    )
    return 0
