"""What follows a commit never turns it into a failure, except where the answer needs it."""

from __future__ import annotations

from typing import Any

import pytest

from app.api.keys import SCOREBOARD
from app.errors import ServiceUnavailable

from .conftest import Flow, Snapshot, envelope


async def _unavailable(*args: Any, **kwargs: Any) -> Any:
    raise ServiceUnavailable("Redis is unavailable")


@pytest.mark.parametrize("step", ["publish", "rename"])
async def test_live_side_failures_do_not_fail_the_request(flow: Flow, client: Any, step: str) -> None:
    scoreboard = client.app[SCOREBOARD]
    if step == "publish":
        scoreboard.placer.fanout.publish = _unavailable
    else:
        scoreboard.ranking.rename = _unavailable
    data = await flow.award("alice", "q1")
    assert data["newScore"] == 100


async def test_board_lost_after_commit_says_awarded(flow: Flow, client: Any, snapshot: Snapshot) -> None:
    token = await flow.token("alice", "q1")
    client.app[SCOREBOARD].ranking.put_all = _unavailable
    resp = await flow.submit(token)
    body = await envelope(resp)
    assert resp.status == 503 and body["error"]["details"] == {"awarded": True}
    assert len((await snapshot())["score_history"]) == 1  # recorded; the board catches up from it
    assert (await flow.submit(token)).status == 409
