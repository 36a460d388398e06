"""Boards made at run time by operators: created, changed and retired through the admin routes,
kept in the database across restarts, in every storage set-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.auth import UserAuth

from ..conftest import Flow, envelope
from .scene import BOARDS, AppClient, Boards, Clock, app_with_clock, boards_config


def _admin(user_auth: UserAuth, roles: tuple[str, ...] = ("admin",)) -> dict[str, str]:
    return {"Authorization": f"Bearer {user_auth.issue('op', name='Operator', roles=roles)}"}


async def _call(client: AppClient, method: str, path: str, headers: dict[str, str], **kw: Any) -> tuple[int, Any]:
    resp = await client.request(method, path, headers=headers, **kw)
    body = await envelope(resp)
    return resp.status, body["data"] if body["success"] else body["error"]


async def test_operators_create_change_and_retire_boards(
    aiohttp_client: Any, db_path: Path, storage: dict[str, Any], user_auth: UserAuth, bearer: Any
) -> None:
    config, clock = boards_config(db_path, storage), Clock()
    client: AppClient = await aiohttp_client(app_with_clock(config, clock))
    admin = _admin(user_auth)
    new = {"id": "season-1", "title": "Season 1", "reset": "monthly", "timezone": "America/New_York"}
    status, board = await _call(client, "POST", "/api/v1/admin/boards", admin, json=new)
    assert status == 201, board
    assert (board["id"], board["period"]["id"], board["entries"]) == ("season-1", "2026-12", 0)
    assert board["period"]["startsAt"] == "2026-12-01T05:00:00.000Z"  # midnight in New York
    status, again = await _call(client, "POST", "/api/v1/admin/boards", admin, json=new)
    assert (status, again["code"]) == (409, "BOARD_EXISTS")
    for bad in (
        {"id": "Season"},
        {"id": "s2", "timezone": "Mars/Olympus"},
        {"id": "s2", "reset": "every tuesday"},
        {"id": "s2", "reset": "0 0 30 2 *"},
        {"id": "s2", "order": "up"},
        {"id": "x" * 65},
        {"id": "s2", "title": "a\x00b"},  # PostgreSQL's text holds no NUL: it was a 500 there
        {"id": "s2", "reason": "a\x00b"},
        {"id": "s2", "title": "two\nlines"},
    ):
        status, error = await _call(client, "POST", "/api/v1/admin/boards", admin, json=bad)
        assert (status, error["code"]) == (400, "VALIDATION_ERROR"), bad
    # Not an operator: a user without the role, or with another role.
    for headers in (bearer("mallory"), _admin(user_auth, ("moderator",))):
        status, error = await _call(client, "POST", "/api/v1/admin/boards", headers, json={"id": "s3"})
        assert (status, error["code"]) == (403, "FORBIDDEN")
    status, _ = await _call(client, "POST", "/api/v1/admin/boards", {}, json={"id": "s3"})
    assert status == 401

    boards = Boards(client, bearer)
    await boards.write("season-1", {"userId": "ann", "score": 5})
    status, changed = await _call(
        client, "PATCH", "/api/v1/admin/boards/season-1", admin, json={"title": "Season One", "keepPeriods": 3}
    )
    assert status == 200 and changed["title"] == "Season One" and changed["keepPeriods"] == 3
    assert changed["entries"] == 1
    status, error = await _call(client, "PATCH", "/api/v1/admin/boards/nope", admin, json={"title": "x"})
    assert (status, error["code"]) == (404, "BOARD_NOT_FOUND")
    # What would re-rank or re-period the board is refused, not ignored: even as it is, even null.
    for fixed in ({"order": "asc"}, {"operator": "best"}, {"reset": "monthly"}, {"timezone": None}):
        body = {"title": "Renamed", **fixed}
        status, error = await _call(client, "PATCH", "/api/v1/admin/boards/season-1", admin, json=body)
        assert (status, error["code"]) == (400, "VALIDATION_ERROR"), fixed
        assert f"`{next(iter(fixed))}` cannot change" in error["details"]
    unprintable: list[dict[str, Any]] = [
        {"title": "a\x00b"},
        {"title": "two\nlines"},
        {"keepPeriods": 2, "reason": "a\x85b"},
        {"title": " \u200b "},
        {"title": "Cup \u202efinal"},
    ]
    for change in unprintable:
        status, error = await _call(client, "PATCH", "/api/v1/admin/boards/season-1", admin, json=change)
        assert (status, error["code"]) == (400, "VALIDATION_ERROR"), change
    status, error = await _call(client, "DELETE", "/api/v1/admin/boards/season-1", admin, json={"reason": "a\x00"})
    assert (status, error["code"]) == (400, "VALIDATION_ERROR")
    detail = await boards.get("/api/v1/boards/season-1")
    assert (detail["title"], detail["keepPeriods"]) == ("Season One", 3)

    # The default board and boards the action catalog awards on stay.
    for board_id in ("global", "weekly"):
        status, error = await _call(client, "DELETE", f"/api/v1/admin/boards/{board_id}", admin)
        assert (status, error["code"]) == (409, "BOARD_IN_USE"), board_id
    await client.close()

    # A restart keeps what operators did.
    client = await aiohttp_client(app_with_clock(config, clock))
    boards = Boards(client, bearer)
    listed = {b["id"]: b for b in (await boards.get("/api/v1/boards"))["boards"]}
    assert listed["season-1"]["title"] == "Season One"
    assert await boards.top("season-1") == [("ann", 5)]
    status, retired = await _call(client, "DELETE", "/api/v1/admin/boards/season-1", admin)
    assert status == 200 and retired == {"board": "season-1", "retired": True}
    assert (await boards.get("/api/v1/boards/season-1/top", status=404))["code"] == "BOARD_NOT_FOUND"
    assert (await boards.write("season-1", {"userId": "ann", "score": 6}, key="k2", status=404))["code"] == (
        "BOARD_NOT_FOUND"
    )
    status, error = await _call(client, "POST", "/api/v1/admin/boards", admin, json={"id": "season-1"})
    assert (status, error["code"]) == (409, "BOARD_EXISTS")  # a retired id is not reused
    await client.close()
    client = await aiohttp_client(app_with_clock(config, clock))
    ids = [b["id"] for b in (await Boards(client, bearer).get("/api/v1/boards"))["boards"]]
    assert "season-1" not in ids


async def test_a_board_kept_back_past_the_calendars_first_year_breaks_nothing(
    aiohttp_client: Any,
    db_path: Path,
    storage: dict[str, Any],
    clock: Clock,
    client: AppClient,
    flow: Flow,
    boards: Boards,
    operator: dict[str, str],
    bearer: Any,
) -> None:
    """A four-yearly cron kept 1000 periods back reaches before year 1. Listing its periods failed,
    and with it every read of its periods, every reinstatement and erasure (on any board) and, with
    Redis, every rebuild and sweep."""
    leap = {"id": "leap", "reset": "0 0 29 2 *", "timezone": "Pacific/Apia", "keepPeriods": 1000}
    assert (await _call(client, "POST", "/api/v1/admin/boards", operator, json=leap))[0] == 201
    await flow.award("ann", "q1")
    await flow.award("bob", "q1")
    await boards.write("leap", {"userId": "ann", "score": 3})
    periods = (await boards.get("/api/v1/boards/leap/periods"))["periods"]
    assert [p["id"] for p in periods] == ["2024-02-29T00:00"]
    assert (await boards.get("/api/v1/boards/leap/top", period="previous"))["period"] == "2020-02-29T00:00"
    assert (await boards.get("/api/v1/boards/leap/top", period="0004-02-29T00:00"))["leaderboard"] == []
    for act in ("disqualify", "reinstate"):
        assert (await _call(client, "POST", f"/api/v1/admin/users/bob/{act}", operator, json={"reason": "x"}))[0] == 200
    assert await boards.top("global") == [("ann", 100), ("bob", 100)]
    erased = await client.delete("/api/v1/users/me", headers=bearer("ann"))
    assert erased.status == 200, await erased.text()
    await client.close()
    # A restart rebuilds every board (from the database, in the Redis set-ups).
    again = Boards(await aiohttp_client(app_with_clock(boards_config(db_path, storage), clock)), bearer)
    assert await again.top("global") == [("bob", 100)]
    assert await again.top("leap") == []


async def test_an_edited_configuration_replaces_a_declared_board(
    aiohttp_client: Any, db_path: Path, storage: dict[str, Any], bearer: Any
) -> None:
    clock = Clock()
    client: AppClient = await aiohttp_client(app_with_clock(boards_config(db_path, storage), clock))
    assert (await Boards(client, bearer).get("/api/v1/boards/weekly"))["title"] == "This week"
    await client.close()
    edited = boards_config(
        db_path,
        storage,
        boards={**BOARDS, "weekly": {"title": "Weekly cup", "reset": "weekly", "keep_periods": 2}},
    )
    client = await aiohttp_client(app_with_clock(edited, clock))
    assert (await Boards(client, bearer).get("/api/v1/boards/weekly"))["title"] == "Weekly cup"


async def test_every_act_on_the_catalog_is_recorded_with_its_operator_and_reason(
    client: AppClient, flow: Flow, user_auth: UserAuth
) -> None:
    admin = _admin(user_auth)
    await flow.award("op", "q1")  # an operator who plays too: their export holds their acts
    new = {"id": "cup", "title": "Cup", "reason": "the cup starts"}
    assert (await _call(client, "POST", "/api/v1/admin/boards", admin, json=new))[0] == 201
    assert (await _call(client, "PATCH", "/api/v1/admin/boards/cup", admin, json={"keepPeriods": 2}))[0] == 200
    assert (await _call(client, "POST", "/api/v1/admin/boards", admin, json={"id": "cup"}))[0] == 409  # not an act
    status, _ = await _call(client, "DELETE", "/api/v1/admin/boards/cup", admin, json={"reason": "the cup is over"})
    assert status == 200
    status, error = await _call(client, "DELETE", "/api/v1/admin/boards/x", admin, json={"reason": ""})
    assert (status, error["code"]) == (400, "VALIDATION_ERROR")
    # The operator's own acts are in their export, as the audit record keeps them.
    status, export = await _call(client, "GET", "/api/v1/users/me/export", admin)
    assert status == 200, export
    assert [(a["action"], a["operator"], a["reason"], a["board"], a["userId"]) for a in export["acts"]] == [
        ("create_board", "op", "the cup starts", "cup", None),
        ("change_board", "op", "", "cup", None),
        ("retire_board", "op", "the cup is over", "cup", None),
    ]
    assert export["acts"][1]["details"]["keep_periods"] == 2  # the settings the act set
