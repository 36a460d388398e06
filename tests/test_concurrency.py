"""Exactly once under concurrency: one token submitted 100 times at once awards once."""

from __future__ import annotations

import asyncio
from typing import Any

from .conftest import Flow, Snapshot, envelope


async def test_hundred_concurrent_submissions_award_once(flow: Flow, client: Any, snapshot: Snapshot) -> None:
    token = await flow.token("alice", "q1")
    responses = await asyncio.gather(*(flow.submit(token) for _ in range(100)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] + [409] * 99
    codes = {(await envelope(r))["error"]["code"] for r in responses if r.status == 409}
    assert codes == {"TOKEN_ALREADY_USED"}
    rows = await snapshot()
    assert len(rows["score_history"]) == 1
    assert [(r[2], r[3]) for r in rows["board_entries"]] == [("alice", 100)]
    top = (await envelope(await client.get("/api/v1/scoreboard/top")))["data"]["leaderboard"]
    assert [(e["userId"], e["score"]) for e in top] == [("alice", 100)]


async def test_many_users_concurrently(flow: Flow, client: Any) -> None:
    tokens = await asyncio.gather(*(flow.token(f"p{i}", "q1") for i in range(40)))
    responses = await asyncio.gather(*(flow.submit(t, user=f"p{i}") for i, t in enumerate(tokens)))
    assert all(r.status == 200 for r in responses)
    top = (await envelope(await client.get("/api/v1/scoreboard/top?limit=100")))["data"]["leaderboard"]
    assert len(top) == 40 and {e["score"] for e in top} == {100}
    assert [e["rank"] for e in top] == list(range(1, 41))
