"""Cheat quarantine (`[actions.X] hold_over_per_hour`), in every storage set-up: a user's awards of an
action beyond the limit in any rolling hour are held (202, token spent, nothing on the boards) until
an operator approves one (it lands, in its own period while that is kept) or rejects it, once; the
operator routes' refusals change nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from app.api.keys import SCOREBOARD
from app.auth import UserAuth

from ..conftest import Flow, Snapshot, envelope, send
from ..live_client import recv_type, subscribed
from .scene import (
    ACTIONS,
    NEXT_MONDAY_MS,
    AppClient,
    Boards,
    Clock,
    HeldBack,
    app_with_clock,
    boards_config,
    no_period_end_while_held,
)

HOUR_MS = 3_600_000
# Two an hour land; the third and later are held.
CHEST = {"score": 10, "boards": ["global", "weekly", "daily"], "hold_over_per_hour": 2}
HELD = "/api/v1/admin/held"


@pytest.fixture
async def client(aiohttp_client: Any, db_path: Path, storage: dict[str, Any], clock: Clock) -> AppClient:
    """The app of scene.py with OPEN_CHEST, whose awards beyond two an hour are held."""
    config = boards_config(db_path, storage, actions={**ACTIONS, "OPEN_CHEST": CHEST})
    app_client: AppClient = await aiohttp_client(app_with_clock(config, clock))
    return app_client


async def chest(flow: Flow, user: str, action_id: str, status: int = 200) -> Any:
    """Initialize and update an OPEN_CHEST; the update's data (asserting its status)."""
    token = await flow.token(user, action_id, "OPEN_CHEST")
    resp = await flow.submit(token, user, action_id)
    body = await envelope(resp)
    assert resp.status == status, body
    return body["data"]


async def call(client: AppClient, method: str, path: str, headers: dict[str, str], **kw: Any) -> tuple[int, Any]:
    """A request; its status and its data or error."""
    resp = await client.request(method, path, headers=headers, **kw)
    body = await envelope(resp)
    return resp.status, body["data"] if body["success"] else body["error"]


async def pending(client: AppClient, operator: dict[str, str], **params: str) -> Any:
    """GET /admin/held as an operator, asserting 200; its data."""
    status, data = await call(client, "GET", HELD, operator, params=params)
    assert status == 200, data
    return data


async def decide(client: AppClient, operator: dict[str, str], held_id: int, verb: str, reason: str = "checked") -> Any:
    """An operator's approval or rejection that succeeds; its data."""
    status, data = await call(client, "POST", f"{HELD}/{held_id}/{verb}", operator, json={"reason": reason})
    assert status == 200, data
    return data


async def test_the_catalog_shows_the_limit(client: AppClient) -> None:
    actions = {a["type"]: a for a in (await envelope(await client.get("/api/v1/actions")))["data"]["actions"]}
    assert actions["OPEN_CHEST"]["holdOverPerHour"] == 2
    assert actions["COMPLETE_QUEST"]["holdOverPerHour"] is None


async def test_awards_beyond_the_limit_are_held_and_land_nowhere(
    flow: Flow, boards: Boards, client: AppClient, operator: dict[str, str], snapshot: Snapshot
) -> None:
    for i in range(2):
        assert (await chest(flow, "alice", f"c{i}"))["newScore"] == 10 * (i + 1)
    before = await snapshot()
    token = await flow.token("alice", "c2", "OPEN_CHEST")
    resp = await flow.submit(token, "alice", "c2")
    held = (await envelope(resp))["data"]
    assert resp.status == 202
    assert held == {
        "status": "held",
        "id": held["id"],
        "userId": "alice",
        "actionType": "OPEN_CHEST",
        "actionId": "c2",
        "scoreIncrement": 10,
    }
    after = await snapshot()
    for table in ("board_entries", "board_history"):
        assert after[table] == before[table]
    assert len(after["score_history"]) == 3 and len(after["held_awards"]) == 1
    for board in ("global", "weekly", "daily"):
        assert await boards.top(board) == [("alice", 20)]
    # The token is spent, and the action completed: neither awards again.
    resp = await flow.submit(token, "alice", "c2")
    assert (resp.status, (await envelope(resp))["error"]["code"]) == (409, "TOKEN_ALREADY_USED")
    resp = await flow.client.post(
        "/api/v1/actions/initialize", json={"actionType": "OPEN_CHEST", "actionId": "c2"}, headers=flow.bearer("alice")
    )
    assert (resp.status, (await envelope(resp))["error"]["code"]) == (409, "ACTION_ALREADY_COMPLETED")
    # Listed for operators with where it was to land.
    listed = await pending(client, operator)
    (entry,) = listed["held"]
    assert (entry["id"], entry["userId"], entry["actionId"], entry["score"], entry["status"]) == (
        held["id"],
        "alice",
        "c2",
        10,
        "pending",
    )
    assert [b["board"] for b in entry["boards"]] == ["global", "weekly", "daily"]
    assert (entry["decidedBy"], entry["reason"], entry["decidedAt"], listed["nextAfter"]) == (None, None, None, None)
    # Other users and other actions are not held.
    assert (await chest(flow, "bob", "c0"))["newScore"] == 10
    assert (await flow.award("alice", "q1"))["newScore"] == 120


async def test_held_ones_count_and_an_hour_later_awards_land_again(
    flow: Flow, boards: Boards, client: AppClient, clock: Clock, operator: dict[str, str]
) -> None:
    await chest(flow, "alice", "c0")
    clock.now_ms += 30 * 60_000
    await chest(flow, "alice", "c1")
    clock.now_ms += 20 * 60_000
    await chest(flow, "alice", "c2", 202)
    # 59 minutes after the first: three in the hour, the held one among them.
    clock.now_ms += 9 * 60_000
    await chest(flow, "alice", "c3", 202)
    # The first leaves the window: c1, c2 and c3 are in it (held ones count), so still held.
    clock.now_ms += 2 * 60_000
    await chest(flow, "alice", "c4", 202)
    # An hour after c3 and c4, nothing of before is in the window.
    clock.now_ms += HOUR_MS
    assert (await chest(flow, "alice", "c5"))["newScore"] == 30
    assert await boards.top("global") == [("alice", 30)]
    assert [h["actionId"] for h in (await pending(client, operator))["held"]] == ["c2", "c3", "c4"]


async def test_approval_lands_in_its_kept_period_else_the_current_one(
    flow: Flow, boards: Boards, client: AppClient, clock: Clock, operator: dict[str, str], snapshot: Snapshot
) -> None:
    for i in range(2):
        await chest(flow, "alice", f"c{i}")
    held = await chest(flow, "alice", "c2", 202)
    await chest(flow, "bob", "b0")
    # Next Monday: the week of the hold is kept (weekly keeps 2), its day is not (daily keeps 1).
    clock.now_ms = NEXT_MONDAY_MS + HOUR_MS
    history = len((await snapshot())["board_history"])
    ws = await subscribed(client, board="global")
    approved = await decide(client, operator, held["id"], "approve", "replay checked")
    assert (approved["status"], approved["decidedBy"], approved["reason"]) == ("approved", "ops-1", "replay checked")
    landed = {b["board"]: (b["period"], b["previousScore"], b["newScore"], b["rank"]) for b in approved["landed"]}
    assert landed == {
        "global": ("all", 20, 30, 1),
        "weekly": ("2026-W49", 20, 30, 1),
        "daily": ("2026-12-07", 0, 10, 1),
    }
    update = await recv_type(ws, "leaderboard_update")
    assert [(e["userId"], e["score"]) for e in update["data"]["leaderboard"]] == [("alice", 30), ("bob", 10)]
    await ws.close()
    assert await boards.top("weekly", period="2026-W49") == [("alice", 30), ("bob", 10)]
    assert await boards.top("daily") == [("alice", 10)]
    rows = await snapshot()
    assert len(rows["board_history"]) == history + 3  # one history row per board, as an award's
    (kept,) = rows["held_awards"]
    assert kept[0] == held["id"] and "approved" in kept and "ops-1" in kept and "replay checked" in kept
    assert (await pending(client, operator))["held"] == []
    assert [h["id"] for h in (await pending(client, operator, status="approved"))["held"]] == [held["id"]]


async def test_rejection_changes_no_board(
    flow: Flow, boards: Boards, client: AppClient, operator: dict[str, str], snapshot: Snapshot
) -> None:
    for i in range(2):
        await chest(flow, "alice", f"c{i}")
    held = await chest(flow, "alice", "c2", 202)
    before = await snapshot()
    rejected = await decide(client, operator, held["id"], "reject", "21 chests in 4 minutes")
    assert (rejected["status"], rejected["decidedBy"], rejected["landed"]) == ("rejected", "ops-1", [])
    after = await snapshot()
    assert {t: rows for t, rows in after.items() if t != "held_awards"} == {
        t: rows for t, rows in before.items() if t != "held_awards"
    }
    assert await boards.top("global") == [("alice", 20)]
    for verb in ("approve", "reject"):
        status, error = await call(client, "POST", f"{HELD}/{held['id']}/{verb}", operator, json={"reason": "again"})
        assert (status, error["code"], error["details"]["status"]) == (409, "ALREADY_DECIDED", "rejected")
    assert await snapshot() == after


@pytest.mark.parametrize("verbs", [("approve", "approve"), ("approve", "reject")])
async def test_concurrent_decisions_decide_once(
    verbs: tuple[str, str], flow: Flow, boards: Boards, client: AppClient, operator: dict[str, str]
) -> None:
    for i in range(2):
        await chest(flow, "alice", f"c{i}")
    held = await chest(flow, "alice", "c2", 202)
    path = f"{HELD}/{held['id']}"
    answers = await asyncio.gather(
        *(call(client, "POST", f"{path}/{verbs[i % 2]}", operator, json={"reason": f"r{i}"}) for i in range(10))
    )
    decided = [data for status, data in answers if status == 200]
    assert len(decided) == 1
    assert {(status, data["code"]) for status, data in answers if status != 200} == {(409, "ALREADY_DECIDED")}
    score = 30 if decided[0]["status"] == "approved" else 20
    for board in ("global", "weekly", "daily"):
        assert await boards.top(board) == [("alice", score)]


async def test_racing_awards_past_the_limit_land_no_more_than_it(
    flow: Flow, boards: Boards, client: AppClient, operator: dict[str, str]
) -> None:
    tokens = [await flow.token("alice", f"c{i}", "OPEN_CHEST") for i in range(10)]
    answers = await asyncio.gather(*(flow.submit(t, "alice", f"c{i}") for i, t in enumerate(tokens)))
    assert sorted(resp.status for resp in answers) == [200] * 2 + [202] * 8
    assert await boards.top("global") == [("alice", 20)]
    listed = await pending(client, operator, limit="5")
    assert len(listed["held"]) == 5 and listed["nextAfter"] == listed["held"][-1]["id"]
    rest = await pending(client, operator, after=str(listed["nextAfter"]))
    assert (len(rest["held"]), rest["nextAfter"]) == (3, None)


# (name, method, path, headers: "operator" | "user" | None, body: JSON or raw bytes, status, code)
RefusalCase = tuple[str, str, str, str | None, Any, int, str]
GOOD = {"reason": "checked"}
REFUSALS: list[RefusalCase] = [
    ("list without a token", "GET", HELD, None, None, 401, "UNAUTHORIZED"),
    ("list as a user", "GET", HELD, "user", None, 403, "FORBIDDEN"),
    ("approve without a token", "POST", "{held}/approve", None, GOOD, 401, "UNAUTHORIZED"),
    ("approve as a user", "POST", "{held}/approve", "user", GOOD, 403, "FORBIDDEN"),
    ("reject as a user", "POST", "{held}/reject", "user", GOOD, 403, "FORBIDDEN"),
    ("unknown id", "POST", f"{HELD}/999999/approve", "operator", GOOD, 404, "NOT_FOUND"),
    ("unknown id, reject", "POST", f"{HELD}/999999/reject", "operator", GOOD, 404, "NOT_FOUND"),
    *(
        (f"id {bad!r}", "POST", f"{HELD}/{bad}/approve", "operator", GOOD, 400, "VALIDATION_ERROR")
        for bad in ("0", "-1", "abc", "1.5", "9" * 30, "%C3%A9", "%EF%BC%91", "1%0A")
    ),
    ("no reason", "POST", "{held}/approve", "operator", {}, 400, "VALIDATION_ERROR"),
    ("empty reason", "POST", "{held}/approve", "operator", {"reason": ""}, 400, "VALIDATION_ERROR"),
    ("reason too long", "POST", "{held}/reject", "operator", {"reason": "x" * 501}, 400, "VALIDATION_ERROR"),
    ("number reason", "POST", "{held}/approve", "operator", {"reason": 7}, 400, "VALIDATION_ERROR"),
    ("NUL in the reason", "POST", "{held}/approve", "operator", {"reason": "a\x00b"}, 400, "VALIDATION_ERROR"),
    ("two-line reason", "POST", "{held}/reject", "operator", {"reason": "a\nb"}, 400, "VALIDATION_ERROR"),
    ("not JSON", "POST", "{held}/approve", "operator", b"{not json", 400, "VALIDATION_ERROR"),
    ("invalid UTF-8", "POST", "{held}/approve", "operator", b'{"reason":"ok\xff"}', 400, "VALIDATION_ERROR"),
    (
        "nested 1000 deep",
        "POST",
        "{held}/reject",
        "operator",
        b'{"reason":"ok","x":' + b"[" * 1000 + b"]" * 1000 + b"}",
        400,
        "VALIDATION_ERROR",
    ),
    ("oversize body", "POST", "{held}/approve", "operator", {"reason": "y" * 9000}, 413, "PAYLOAD_TOO_LARGE"),
    ("bad status", "GET", f"{HELD}?status=held", "operator", None, 400, "VALIDATION_ERROR"),
    ("bad limit", "GET", f"{HELD}?limit=101", "operator", None, 400, "VALIDATION_ERROR"),
    ("wrong method", "GET", "{held}/approve", "operator", None, 405, "METHOD_NOT_ALLOWED"),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[c[0] for c in REFUSALS])
async def test_operator_route_refusals_change_nothing(
    case: RefusalCase,
    flow: Flow,
    client: AppClient,
    operator: dict[str, str],
    bearer: Any,
    snapshot: Snapshot,
) -> None:
    _, method, path, who, body, status, code = case
    for i in range(2):
        await chest(flow, "alice", f"c{i}")
    held = await chest(flow, "alice", "c2", 202)
    before = await snapshot()
    headers = {"operator": operator, "user": bearer("mallory"), None: {}}[who]
    answered, error = await send(client, method, path.format(held=f"{HELD}/{held['id']}"), headers, body)
    assert (answered, error["code"]) == (status, code), error
    assert await snapshot() == before
    # Still pending, and still decidable.
    assert (await decide(client, operator, held["id"], "approve"))["status"] == "approved"


async def test_an_erasure_leaves_no_held_award_naming_the_user(
    flow: Flow, client: AppClient, operator: dict[str, str], snapshot: Snapshot
) -> None:
    for i in range(3):
        await chest(flow, "mallory", f"c{i}", 202 if i == 2 else 200)
    await chest(flow, "mallory", "c3", 202)
    first, second = [held["id"] for held in (await pending(client, operator))["held"]]
    await decide(client, operator, first, "reject")
    status, erased = await call(client, "DELETE", "/api/v1/users/me", flow.bearer("mallory"))
    assert (status, erased) == (200, {"erased": True})
    rows = (await snapshot())["held_awards"]
    assert len(rows) == 2 and not [row for row in rows if "mallory" in str(row).lower()]
    # The one still pending was rejected with her: approved, it would have landed under the pseudonym.
    assert (await pending(client, operator))["held"] == []
    status, again = await call(client, "POST", f"{HELD}/{second}/approve", operator, json={"reason": "x"})
    assert status == 409 and again["code"] == "ALREADY_DECIDED", again


async def test_the_export_holds_the_users_held_awards(flow: Flow, client: AppClient, operator: dict[str, str]) -> None:
    for i in range(2):
        await chest(flow, "alice", f"c{i}")
    held = await chest(flow, "alice", "c2", 202)
    await decide(client, operator, held["id"], "reject", "too many")
    status, kept = await call(client, "GET", "/api/v1/users/me/export", flow.bearer("alice"))
    assert status == 200, kept
    (entry,) = kept["held"]
    assert (entry["id"], entry["actionId"], entry["score"], entry["status"], entry["reason"]) == (
        held["id"],
        "c2",
        10,
        "rejected",
        "too many",
    )
    assert entry["createdAt"].endswith("Z") and entry["decidedAt"].endswith("Z")
    # The rules that held it, as the operators' list shows them.
    (listed,) = (await pending(client, operator, status="rejected"))["held"]
    assert entry["rules"] == listed["rules"] == ["hold_over_per_hour"]


async def test_a_disqualified_users_held_award_waits_for_the_reinstatement(
    flow: Flow, boards: Boards, client: AppClient, operator: dict[str, str], snapshot: Snapshot
) -> None:
    for i in range(2):
        await chest(flow, "mallory", f"c{i}")
    held = await chest(flow, "mallory", "c2", 202)
    status, _ = await call(client, "POST", "/api/v1/admin/users/mallory/disqualify", operator, json={"reason": "x"})
    assert status == 200
    before = await snapshot()
    status, error = await call(client, "POST", f"{HELD}/{held['id']}/approve", operator, json={"reason": "ok"})
    assert (status, error["code"]) == (403, "DISQUALIFIED")
    assert await snapshot() == before  # still pending: the decision was undone with the rest
    status, _ = await call(client, "POST", "/api/v1/admin/users/mallory/reinstate", operator, json={"reason": "x"})
    assert status == 200
    assert (await decide(client, operator, held["id"], "approve"))["status"] == "approved"
    assert await boards.top("global") == [("mallory", 30)]


async def test_the_frozen_top_waits_for_an_approval_committed_in_the_period_and_still_being_placed(
    flow: Flow,
    boards: Boards,
    client: AppClient,
    clock: Clock,
    operator: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock.now_ms = NEXT_MONDAY_MS - 1000
    for i in range(2):
        await chest(flow, "alice", f"c{i}")
    held = await chest(flow, "alice", "c2", 202)
    clock.short_of_monday()
    ws = await subscribed(client, board="weekly")
    # The approval commits in the last moments of the week, then is slow to reach the rank index.
    held_back = HeldBack(monkeypatch, client.app[SCOREBOARD].store, "decide")
    approval = asyncio.create_task(decide(client, operator, held["id"], "approve"))
    await held_back.committed(approval)
    await no_period_end_while_held(client, clock, ws)
    held_back.release()
    landed = {b["board"]: (b["period"], b["newScore"]) for b in (await approval)["landed"]}
    assert landed["weekly"] == ("2026-W49", 30)
    ended = await recv_type(ws, "period_ended")
    assert [(e["userId"], e["score"]) for e in ended["data"]["leaderboard"]] == [("alice", 30)]
    assert await boards.top("weekly", period="2026-W49") == [("alice", 30)]
    await ws.close()


async def test_an_operator_who_never_played_exports_and_is_erased(
    flow: Flow, client: AppClient, operator: dict[str, str], user_auth: UserAuth, snapshot: Snapshot
) -> None:
    # ops-1 has no users row: only their decision and their act keep their id.
    for i in range(2):
        await chest(flow, "alice", f"c{i}")
    held = await chest(flow, "alice", "c2", 202)
    await decide(client, operator, held["id"], "reject", "too many chests")
    status, _ = await call(client, "POST", "/api/v1/admin/boards", operator, json={"id": "cup", "reason": "a cup"})
    assert status == 201
    status, export = await call(client, "GET", "/api/v1/users/me/export", operator)
    assert status == 200, export
    assert export["user"] is None and export["entries"] == [] and export["awards"] == []
    assert [(d["heldId"], d["status"], d["reason"]) for d in export["decisions"]] == [
        (held["id"], "rejected", "too many chests")
    ]
    assert [(a["action"], a["operator"], a["board"]) for a in export["acts"]] == [("create_board", "ops-1", "cup")]
    other = {"Authorization": f"Bearer {user_auth.issue('ops-2', roles=('admin',))}"}
    status, erased = await call(client, "DELETE", "/api/v1/users/ops-1", other)
    assert (status, erased) == (200, {"erased": True})
    rows = await snapshot()
    assert [(t, row) for t, kept in rows.items() for row in kept if any("ops-1" in str(v) for v in row)] == []
    assert any("erased-" in str(row) for row in rows["held_awards"])  # the decision is kept, under the pseudonym
    status, error = await call(client, "GET", "/api/v1/users/me/export", operator)
    assert (status, error["code"]) == (404, "USER_NOT_FOUND")
    status, error = await call(client, "DELETE", "/api/v1/users/ops-2", other)  # nothing is kept of ops-2
    assert (status, error["code"]) == (404, "USER_NOT_FOUND")
