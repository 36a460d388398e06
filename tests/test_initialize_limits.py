"""`initialize` is limited per user: a rate, and a cap on unexpired unused tokens checked inside the
store's transaction; a refusal is 429 RATE_LIMITED and writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .conftest import Flow, MakeClient, Snapshot, envelope

INITIALIZE = "/api/v1/actions/initialize"
TTL_MS = 300_000
Bearer = Callable[..., dict[str, str]]


async def initialize(flow: Flow, user: str, action_id: str, action_type: str = "COMPLETE_QUEST") -> Any:
    return await flow.client.post(
        INITIALIZE, json={"actionType": action_type, "actionId": action_id}, headers=flow.bearer(user)
    )


async def assert_rate_limited(resp: Any) -> int:
    body = await envelope(resp)
    assert resp.status == 429 and body["error"]["code"] == "RATE_LIMITED", body
    retry_after = resp.headers["Retry-After"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    return int(retry_after)


async def test_initialize_is_rate_limited_per_user(make_client: MakeClient, bearer: Bearer, snapshot: Snapshot) -> None:
    flow = Flow(await make_client(limits={"initializes_per_minute": 2}), bearer)
    assert (await initialize(flow, "alice", "q1", "NO_SUCH_ACTION")).status == 400  # every call counts
    assert (await initialize(flow, "alice", "q1")).status == 200
    before = await snapshot()
    await assert_rate_limited(await initialize(flow, "alice", "q2"))
    # A user whose calls were all refused so far gets no row from the one over the limit either.
    for _ in range(2):
        resp = await flow.client.post(INITIALIZE, data=b"not json", headers=bearer("carol"))
        assert resp.status == 400
    await assert_rate_limited(await initialize(flow, "carol", "q1"))
    assert await snapshot() == before
    assert not any(row[0] == "carol" for row in before["users"])
    assert (await initialize(flow, "bob", "q1")).status == 200  # other users are not affected


async def test_unused_tokens_per_user_are_capped(make_client: MakeClient, bearer: Bearer, snapshot: Snapshot) -> None:
    flow = Flow(await make_client(limits={"tokens_per_user": 2}), bearer)
    first = await flow.token("alice", "q1")
    await flow.token("alice", "q2")
    before = await snapshot()
    retry_after = await assert_rate_limited(await initialize(flow, "alice", "q3"))
    assert retry_after <= TTL_MS // 1000  # when the oldest unused token expires
    assert await snapshot() == before
    assert (await flow.submit(first, "alice", "q1")).status == 200  # a used token no longer counts
    await flow.token("alice", "q3")
    await assert_rate_limited(await initialize(flow, "alice", "q4"))
    await flow.token("bob", "q1")  # other users are not affected
