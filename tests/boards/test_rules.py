"""Cheat rules (`[actions.X] hold_over`, `hold_within_s`, `max_score_per_hour`, `velocity`),
repeat offenders' back-off (`[limits] held_backoff_seconds`) and per-action rate limits
(`[actions.X] rate_limit`), in every storage set-up: each rule holds exactly the awards it should,
sequentially at its edges and among 100 concurrent updates of one user; operators see the rules that
held an award and decide it as any held award; the refusals leave the token usable and change nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from app.auth import UserAuth
from app.records import BoardPeriod, HoldRules, Velocity
from app.storage.rules import RuleChecks
from app.storage.schema import POSTGRES, SQLITE, Dialect, migrations

from ..conftest import Flow, Snapshot, envelope
from ..isolation import schema_dsn
from ..stores import claim
from .scene import ACTIONS, AppClient, Boards, Clock, app_with_clock, boards_config

HOUR_MS = 3_600_000
MINUTE_MS = 60_000
HELD = "/api/v1/admin/held"
RACERS = 100  # concurrent updates of one user (the test configuration's per-user limits allow 1000)
RULED: dict[str, Any] = {
    # At most 5 a minute.
    "BURST": {"score": 10, "boards": ["global"], "hold_over": {"count": 5, "window_s": 60}},
    # At least 10 s apart.
    "SPACED": {"score": 10, "boards": ["global"], "hold_within_s": 10},
    # At most 55 points an hour on each of its boards (weekly and daily).
    "CAPPED": {"score": 10, "boards": ["weekly", "daily"], "max_score_per_hour": 55},
    # Against the 5 minutes before: held when (x - mean) / max(stddev, 10) > 2, once 3 of them had any.
    "STEADY": {
        "score": 10,
        "boards": ["global"],
        "velocity": {"window_s": 60, "windows": 5, "min_samples": 3, "z": 2.0},
    },
    # The largest score an action may have: velocity's sums of squares pass 2^63.
    "HUGE": {
        "score": 10**9,
        "boards": ["weekly"],
        "velocity": {"window_s": 60, "windows": 3, "min_samples": 3, "z": 2.0},
    },
    # Two rules at once.
    "TWICE": {"score": 10, "boards": ["global"], "hold_over": {"count": 1, "window_s": 60}, "hold_within_s": 10},
    # Always held (count 0): what the back-off tests need.
    "CHEAT": {"score": 10, "boards": ["global"], "hold_over": {"count": 0, "window_s": 60}},
    # Two updates a second per user, then 429.
    "LIMITED": {"score": 1, "boards": ["global"], "rate_limit": {"count": 2, "window_s": 1}},
}


def ruled_client(aiohttp_client: Any, db_path: Path, storage: dict[str, Any], clock: Clock, **limits: Any) -> Any:
    """The app of scene.py with the actions above and `limits` over the test configuration's."""
    config = boards_config(db_path, storage, actions={**ACTIONS, **RULED}, limits=limits)
    return aiohttp_client(app_with_clock(config, clock))


@pytest.fixture
async def client(aiohttp_client: Any, db_path: Path, storage: dict[str, Any], clock: Clock) -> AppClient:
    """The app with the rules above (no back-off)."""
    app_client: AppClient = await ruled_client(aiohttp_client, db_path, storage, clock)
    return app_client


async def act(flow: Flow, action: str, action_id: str, user: str = "alice") -> tuple[int, Any]:
    """Initialize and update one action; the update's status and its data or error."""
    token = await flow.token(user, action_id, action)
    return await submit(flow, token, action_id, user)


async def submit(flow: Flow, token: str, action_id: str, user: str = "alice") -> tuple[int, Any]:
    """An update with `token`; its status and its data or error."""
    resp = await flow.submit(token, user, action_id)
    body = await envelope(resp)
    return resp.status, body["data"] if body["success"] else body["error"]


async def statuses(flow: Flow, action: str, *ids: str) -> list[int]:
    """The statuses of one update per id, one after the other."""
    return [(await act(flow, action, action_id))[0] for action_id in ids]


async def race(flow: Flow, action: str, prefix: str, n: int = RACERS) -> list[int]:
    """`n` updates of one user sent together (their tokens first); their statuses, sorted."""
    ids = [f"{prefix}{i}" for i in range(n)]
    tokens = [await flow.token("alice", action_id, action) for action_id in ids]
    answers = await asyncio.gather(*(flow.submit(t, "alice", i) for t, i in zip(tokens, ids, strict=True)))
    return sorted(resp.status for resp in answers)


async def held_list(client: AppClient, operator: dict[str, str], status: str = "pending") -> list[Any]:
    """Every held award of a status, all pages."""
    found: list[Any] = []
    after = 0
    while True:
        resp = await client.get(HELD, params={"status": status, "after": str(after)}, headers=operator)
        data = (await envelope(resp))["data"]
        found += data["held"]
        if data["nextAfter"] is None:
            return found
        after = data["nextAfter"]


async def test_the_catalog_shows_the_rules(client: AppClient) -> None:
    actions = {a["type"]: a for a in (await envelope(await client.get("/api/v1/actions")))["data"]["actions"]}
    assert actions["BURST"]["holdOver"] == {"count": 5, "windowS": 60}
    assert actions["SPACED"]["holdWithinS"] == 10
    assert actions["CAPPED"]["maxScorePerHour"] == 55
    assert actions["STEADY"]["velocity"] == {"windowS": 60, "windows": 5, "minSamples": 3, "z": 2.0}
    assert actions["LIMITED"]["rateLimit"] == {"count": 2, "windowS": 1}
    quest = actions["COMPLETE_QUEST"]
    assert [quest[k] for k in ("holdOver", "holdWithinS", "maxScorePerHour", "velocity", "rateLimit")] == [None] * 5


# -- each rule holds exactly what it should


async def test_hold_over_holds_beyond_count_in_its_window(
    flow: Flow, boards: Boards, client: AppClient, clock: Clock, operator: dict[str, str]
) -> None:
    assert await statuses(flow, "BURST", "b0", "b1", "b2", "b3", "b4") == [200] * 5
    assert await statuses(flow, "BURST", "b5") == [202]
    # 59.999 s after the first: six in the window (the held one counts).
    clock.now_ms += MINUTE_MS - 1
    assert await statuses(flow, "BURST", "b6") == [202]
    # A minute after the first six: only b6 (held) is in the window.
    clock.now_ms += 1
    assert await statuses(flow, "BURST", "b7", "b8", "b9") == [200, 200, 200]
    assert await boards.top("global") == [("alice", 80)]
    assert [(h["actionId"], h["rules"]) for h in await held_list(client, operator)] == [
        ("b5", ["hold_over"]),
        ("b6", ["hold_over"]),
    ]


async def test_hold_over_lands_exactly_count_of_100_concurrent(
    flow: Flow, boards: Boards, client: AppClient, operator: dict[str, str]
) -> None:
    assert await race(flow, "BURST", "r") == [200] * 5 + [202] * (RACERS - 5)
    assert await boards.top("global") == [("alice", 50)]
    held = await held_list(client, operator)
    assert len(held) == RACERS - 5 and {tuple(h["rules"]) for h in held} == {("hold_over",)}


async def test_hold_within_holds_a_completion_sooner_than_the_interval(
    flow: Flow, boards: Boards, client: AppClient, clock: Clock, operator: dict[str, str]
) -> None:
    assert await statuses(flow, "SPACED", "s0") == [200]
    clock.now_ms += 9_999
    assert await statuses(flow, "SPACED", "s1") == [202]
    # Exactly 10 s after the held one (a completion too): not sooner, so it lands.
    clock.now_ms += 10_000
    assert await statuses(flow, "SPACED", "s2") == [200]
    # Another action, or another user, is not spaced from alice's.
    assert (await act(flow, "BURST", "x0"))[0] == 200
    assert (await act(flow, "SPACED", "s0", user="bob"))[0] == 200
    assert await boards.top("global") == [("alice", 30), ("bob", 10)]
    assert [(h["actionId"], h["rules"]) for h in await held_list(client, operator)] == [("s1", ["hold_within_s"])]


async def test_hold_within_lands_one_of_100_concurrent(flow: Flow, boards: Boards) -> None:
    assert await race(flow, "SPACED", "r") == [200] + [202] * (RACERS - 1)
    assert await boards.top("global") == [("alice", 10)]


async def test_max_score_per_hour_counts_every_award_on_the_board(
    flow: Flow, boards: Boards, client: AppClient, clock: Clock, operator: dict[str, str]
) -> None:
    assert await statuses(flow, "CAPPED", "c0", "c1", "c2", "c3", "c4") == [200] * 5
    # 50 an hour on weekly and daily: another 10 would pass 55.
    assert await statuses(flow, "CAPPED", "c5") == [202]
    # Another action's awards on one of its boards count there (WEEKLY_ONLY: 7 on weekly), held
    # ones do not (they are on no board).
    clock.now_ms += HOUR_MS - 30 * MINUTE_MS
    assert await statuses(flow, "CAPPED", "c6") == [202]
    clock.now_ms += 30 * MINUTE_MS  # the first five leave the hour
    assert (await act(flow, "WEEKLY_ONLY", "w0"))[0] == 200
    assert await statuses(flow, "CAPPED", "c7", "c8", "c9") == [200] * 3  # 7 + 30 on weekly
    # A trusted server's write is no award: it does not count.
    await boards.write("weekly", {"userId": "alice", "score": 1000})
    assert await statuses(flow, "CAPPED", "c10") == [200]  # 47 on weekly
    assert await statuses(flow, "CAPPED", "c11") == [202]  # 57 > 55 on weekly, 50 on daily
    assert await boards.top("weekly") == [("alice", 1097)]
    assert await boards.top("daily") == [("alice", 90)]
    held = await held_list(client, operator)
    assert [(h["actionId"], h["rules"]) for h in held] == [(i, ["max_score_per_hour"]) for i in ("c5", "c6", "c11")]


async def test_max_score_per_hour_lands_what_fits_of_100_concurrent(flow: Flow, boards: Boards) -> None:
    assert await race(flow, "CAPPED", "r") == [200] * 5 + [202] * (RACERS - 5)
    assert await boards.top("weekly") == [("alice", 50)]
    assert await boards.top("daily") == [("alice", 50)]


async def steady_history(flow: Flow, clock: Clock) -> None:
    """One STEADY award in each of five minutes, then the clock 30 s into the sixth: each of the
    five windows before now holds 10 (mean 10, stddev 0, so one award's 10 is the spread)."""
    for minute in range(5):
        assert await statuses(flow, "STEADY", f"h{minute}") == [200]
        clock.now_ms += MINUTE_MS
    clock.now_ms += 30_000


async def test_velocity_holds_a_window_past_z(
    flow: Flow, boards: Boards, client: AppClient, clock: Clock, operator: dict[str, str]
) -> None:
    await steady_history(flow, clock)
    # x = 10, 20, 30: z = 0, 1, 2 (not past 2); x = 40: z = 3.
    assert await statuses(flow, "STEADY", "v0", "v1", "v2", "v3") == [200, 200, 200, 202]
    assert [(h["actionId"], h["rules"]) for h in await held_list(client, operator)] == [("v3", ["velocity"])]
    assert await boards.top("global") == [("alice", 80)]


async def test_velocity_waits_for_its_samples(flow: Flow, boards: Boards, clock: Clock) -> None:
    # Two earlier windows with a completion: fewer than min_samples 3, so no burst is held.
    for minute in range(2):
        assert await statuses(flow, "STEADY", f"h{minute}") == [200]
        clock.now_ms += MINUTE_MS
    assert await statuses(flow, "STEADY", *(f"v{i}" for i in range(8))) == [200] * 8
    # A third: now it applies. The window holds 80 of before (the burst) and the earlier ones 10, 10, 80.
    clock.now_ms += MINUTE_MS
    assert await statuses(flow, "STEADY", "w0") == [200]
    clock.now_ms += MINUTE_MS
    # Windows before, newest first: 10, 80, 10, 10, 0 -> mean 22, stddev 29.26; x = 10k is held once
    # (10k - 22) / 29.26 > 2, at k = 9.
    assert await statuses(flow, "STEADY", *(f"z{i}" for i in range(9))) == [200] * 8 + [202]


async def test_velocity_lands_exactly_the_calm_ones_of_100_concurrent(flow: Flow, boards: Boards, clock: Clock) -> None:
    await steady_history(flow, clock)
    assert await race(flow, "STEADY", "r") == [200] * 3 + [202] * (RACERS - 3)
    assert await boards.top("global") == [("alice", 80)]


async def test_velocity_with_the_largest_scores(flow: Flow, boards: Boards, clock: Clock) -> None:
    # Three windows of 3 * 10^9 (squares of 9 * 10^18: their sum passes a 64-bit integer): mean
    # 3 * 10^9, stddev 0, so one award's 10^9 is the spread; x = 6 * 10^9 is z = 3.
    for minute in range(3):
        assert await statuses(flow, "HUGE", *(f"h{minute}-{i}" for i in range(3))) == [200] * 3
        clock.now_ms += MINUTE_MS
    assert await statuses(flow, "HUGE", *(f"v{i}" for i in range(6))) == [200] * 5 + [202]
    assert await boards.top("weekly") == [("alice", 14 * 10**9)]


async def test_every_rule_broken_is_recorded(flow: Flow, client: AppClient, operator: dict[str, str]) -> None:
    assert await statuses(flow, "TWICE", "t0", "t1") == [200, 202]
    (held,) = await held_list(client, operator)
    assert held["rules"] == ["hold_over", "hold_within_s"]
    resp = await client.get("/api/v1/users/me/export", headers=flow.bearer("alice"))
    assert [h["rules"] for h in (await envelope(resp))["data"]["held"]] == [["hold_over", "hold_within_s"]]


# -- operators decide rule-held awards


async def test_rule_held_awards_are_approved_and_rejected(
    flow: Flow, boards: Boards, client: AppClient, clock: Clock, operator: dict[str, str], snapshot: Snapshot
) -> None:
    await steady_history(flow, clock)
    assert await statuses(flow, "STEADY", "v0", "v1", "v2", "v3", "v4") == [200, 200, 200, 202, 202]
    first, second = await held_list(client, operator)
    resp = await client.post(f"{HELD}/{first['id']}/approve", json={"reason": "a streak"}, headers=operator)
    approved = (await envelope(resp))["data"]
    assert (resp.status, approved["status"], approved["rules"]) == (200, "approved", ["velocity"])
    assert [(b["board"], b["newScore"]) for b in approved["landed"]] == [("global", 90)]
    before = await snapshot()
    resp = await client.post(f"{HELD}/{second['id']}/reject", json={"reason": "a bot"}, headers=operator)
    rejected = (await envelope(resp))["data"]
    assert (resp.status, rejected["status"], rejected["rules"]) == (200, "rejected", ["velocity"])
    after = await snapshot()
    assert {t: r for t, r in after.items() if t != "held_awards"} == {
        t: r for t, r in before.items() if t != "held_awards"
    }
    assert await boards.top("global") == [("alice", 90)]
    assert [h["rules"] for h in await held_list(client, operator, "approved")] == [["velocity"]]


# -- repeat offenders' back-off


async def test_back_off_grows_caps_and_resets(
    aiohttp_client: Any,
    db_path: Path,
    storage: dict[str, Any],
    clock: Clock,
    bearer: Any,
    user_auth: UserAuth,
    snapshot: Snapshot,
) -> None:
    client = await ruled_client(
        aiohttp_client, db_path, storage, clock, held_backoff_seconds=10, held_backoff_max_seconds=40
    )
    flow = Flow(client, bearer)
    operator = {"Authorization": f"Bearer {user_auth.issue('ops-1', name='Ops', roles=('admin',))}"}
    # The first hold in 24 h costs nothing; the second starts the back-off: 10 s.
    assert await statuses(flow, "CHEAT", "c0", "c1") == [202, 202]
    token = await flow.token("alice", "c2", "CHEAT")
    quest = await flow.token("alice", "q0")
    before = await snapshot()
    for t, action_id in ((token, "c2"), (quest, "q0")):  # any update of the user, any action
        status, error = await submit(flow, t, action_id)
        assert (status, error["code"], error["details"]["retryAfter"]) == (429, "RATE_LIMITED", 10)
    assert await snapshot() == before
    assert (await act(flow, "CHEAT", "c0", user="bob"))[0] == 202  # others are not held back
    # Ten seconds later the same token is taken: held again (3 holds), so 20 s now.
    clock.now_ms += 10_000
    assert (await submit(flow, token, "c2"))[0] == 202
    clock.now_ms += 19_999
    status, error = await submit(flow, quest, "q0")
    assert (status, error["details"]["retryAfter"]) == (429, 1)
    clock.now_ms += 1
    assert (await act(flow, "CHEAT", "c3"))[0] == 202  # 4 holds: 40 s
    clock.now_ms += 40_000
    assert (await act(flow, "CHEAT", "c4"))[0] == 202  # 5 holds: 80 s, capped at 40
    clock.now_ms += 39_000
    resp = await flow.submit(quest, "alice", "q0")
    assert (resp.status, resp.headers["Retry-After"]) == (429, "1")
    clock.now_ms += 1_000
    assert (await act(flow, "CHEAT", "c5"))[0] == 202
    # Approved holds do not count: with all but one approved, nothing holds alice back.
    pending = await held_list(client, operator)
    for held in [h for h in pending if h["userId"] == "alice"][1:]:
        resp = await client.post(f"{HELD}/{held['id']}/approve", json={"reason": "ok"}, headers=operator)
        assert resp.status == 200
    assert (await submit(flow, quest, "q0"))[0] == 200
    # A day after the last hold the back-off is gone too.
    assert (await act(flow, "CHEAT", "c6"))[0] == 202
    assert (await act(flow, "COMPLETE_QUEST", "q1"))[0] == 429
    clock.now_ms += 24 * HOUR_MS
    assert (await act(flow, "COMPLETE_QUEST", "q2"))[0] == 200


# -- per-action rate limits


async def test_rate_limit_per_action_answers_429_and_keeps_the_token(
    flow: Flow, boards: Boards, snapshot: Snapshot
) -> None:
    assert await statuses(flow, "LIMITED", "l0", "l1") == [200, 200]
    token = await flow.token("alice", "l2", "LIMITED")
    before = await snapshot()
    resp = await flow.submit(token, "alice", "l2")
    error = (await envelope(resp))["error"]
    assert (resp.status, error["code"], resp.headers["Retry-After"]) == (429, "RATE_LIMITED", "1")
    assert await snapshot() == before
    # Other actions and other users have their own.
    assert (await act(flow, "COMPLETE_QUEST", "q0"))[0] == 200
    assert (await act(flow, "LIMITED", "l0", user="bob"))[0] == 200
    # The limiter counts real time (as the other rate limits do): a second later the same token lands.
    await asyncio.sleep(1.05)
    assert (await submit(flow, token, "l2"))[0] == 200
    assert await boards.top("global") == [("alice", 103), ("bob", 1)]


async def test_rate_limit_per_action_is_counted_across_processes(
    aiohttp_client: Any, db_path: Path, storage: dict[str, Any], clock: Clock, bearer: Any
) -> None:
    if not storage.get("redis_url"):
        pytest.skip("one process: the embedded set-up counts in it")
    first = Flow(await ruled_client(aiohttp_client, db_path, storage, clock), bearer)
    second = Flow(await ruled_client(aiohttp_client, db_path, storage, clock), bearer)
    assert (await act(first, "LIMITED", "l0"))[0] == 200
    assert (await act(second, "LIMITED", "l1"))[0] == 200
    for flow, action_id in ((first, "l2"), (second, "l3")):
        status, error = await act(flow, "LIMITED", action_id)
        assert (status, error["code"]) == (429, "RATE_LIMITED")


# -- no rule scans a table

# Each rule alone, and the index its read must go through; the back-off's read of held awards.
ALONE: list[tuple[str, HoldRules | None, str]] = [
    ("hold_over_per_hour", HoldRules(over_per_hour=5), "idx_score_history_user_type"),
    ("hold_over", HoldRules(over=(5, 60_000)), "idx_score_history_user_type"),
    ("hold_within_s", HoldRules(within_ms=10_000), "idx_score_history_user_type"),
    ("max_score_per_hour", HoldRules(max_score_per_hour=55), "idx_board_history_user"),
    (
        "velocity",
        HoldRules(velocity=Velocity(window_ms=60_000, windows=5, min_samples=3, z=2.0)),
        "idx_score_history_user_type",
    ),
    ("back-off", None, "idx_held_awards_user"),
    (
        "all five",
        HoldRules(
            over_per_hour=5,
            over=(5, 60_000),
            within_ms=10_000,
            max_score_per_hour=55,
            velocity=Velocity(window_ms=60_000, windows=5, min_samples=3, z=2.0),
        ),
        "idx_board_history_user",
    ),
]
CLAIM = claim(
    "n",
    user="alice",
    action="b0",
    action_type="BURST",
    now=10**9,
    boards=(BoardPeriod(board="weekly", period="2026-W49"),),
)


def read_of(dialect: Dialect, rules: HoldRules | None) -> tuple[str, tuple[Any, ...]]:
    """The statement (and arguments) an award of CLAIM runs for `rules`; the back-off's for None."""
    checks = RuleChecks(dialect)
    if rules is None:
        return checks.recent_holds, ("alice", 0)
    return checks.reads(CLAIM, rules, 1)


@pytest.mark.parametrize(("name", "rules", "index"), ALONE, ids=[p[0] for p in ALONE])
def test_each_rule_reads_through_an_index_in_sqlite(
    tmp_path: Path, name: str, rules: HoldRules | None, index: str
) -> None:
    text, args = read_of(SQLITE, rules)
    with sqlite3.connect(tmp_path / "plans.db") as db:
        for _, statements in migrations(SQLITE):
            for statement in statements:
                db.execute(statement)
        plan = " | ".join(row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {text}", args))
    assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, plan
    assert not any(f"SCAN {table}" in plan for table in ("score_history", "board_history", "held_awards")), plan


@pytest.mark.parametrize(("name", "rules", "index"), ALONE, ids=[p[0] for p in ALONE])
async def test_each_rule_has_an_index_in_postgres(
    pg_schema: str, name: str, rules: HoldRules | None, index: str
) -> None:
    # On empty tables the planner prefers a scan; with scans priced out, the plan shows the index
    # the statement can use (none: it would still scan).
    text, args = read_of(POSTGRES, rules)
    conn = await asyncpg.connect(schema_dsn(pg_schema))
    try:
        for _, statements in migrations(POSTGRES):
            for statement in statements:
                await conn.execute(statement)
        await conn.execute("SET enable_seqscan = off")
        rows = await conn.fetch(f"EXPLAIN {text}", *args)
    finally:
        await conn.close()
    plan = " | ".join(row[0] for row in rows)
    assert index in plan and "Seq Scan" not in plan, plan
