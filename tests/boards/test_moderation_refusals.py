"""Operators' routes refused in every storage set-up: no token, a user's token, unknown users,
boards and periods, bodies that are not what the route takes (near-miss fields, wrong types,
invalid UTF-8, deep nesting, oversize), wrong methods. Each answers its code and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict

from ..conftest import Flow, Snapshot, send
from .scene import ADMIN, CHEAT, AppClient, Boards

# (name, method, path, headers: "operator" | "user" | None, body: JSON or raw bytes, status, code)
RefusalCase = tuple[str, str, str, str | None, Any, int, str]
GOOD = {"reason": "checked"}
DQ = f"{ADMIN}/users/{CHEAT}/disqualify"
ADJ = f"{ADMIN}/boards/global/scores/{CHEAT}/adjust"
REMOVE = f"{ADMIN}/boards/global/periods/current/entries/{CHEAT}/remove"
WIPE = f"{ADMIN}/boards/global/periods/current/wipe"
HISTORY = f"{ADMIN}/users/{CHEAT}/history"
REFUSALS: list[RefusalCase] = [
    ("disqualify without a token", "POST", DQ, None, GOOD, 401, "UNAUTHORIZED"),
    *(
        (f"{path} as a user", "POST", path, "user", body, 403, "FORBIDDEN")
        for path, body in (
            (DQ, GOOD),
            (f"{ADMIN}/users/{CHEAT}/reinstate", GOOD),
            (ADJ, {"delta": 5, **GOOD}),
            (REMOVE, GOOD),
            (WIPE, GOOD),
        )
    ),
    ("history as a user", "GET", HISTORY, "user", None, 403, "FORBIDDEN"),
    # A user learns nothing of what an operator's request must hold: 403 before it is read.
    ("disqualify as a user, body not JSON", "POST", DQ, "user", b"{bad", 403, "FORBIDDEN"),
    ("disqualify as a user, no reason", "POST", DQ, "user", {}, 403, "FORBIDDEN"),
    (
        "adjust as a user, bad user id",
        "POST",
        f"{ADMIN}/boards/global/scores/a%0A/adjust",
        "user",
        GOOD,
        403,
        "FORBIDDEN",
    ),
    ("history as a user, bad limit", "GET", f"{HISTORY}?limit=abc", "user", None, 403, "FORBIDDEN"),
    ("approve as a user, bad id", "POST", f"{ADMIN}/held/abc/approve", "user", GOOD, 403, "FORBIDDEN"),
    ("erase as a user, bad user id", "DELETE", "/api/v1/users/a%0A", "user", None, 403, "FORBIDDEN"),
    ("create a board as a user, bad body", "POST", f"{ADMIN}/boards", "user", {"id": "Bad Id"}, 403, "FORBIDDEN"),
    ("two Authorization headers", "POST", DQ, "operator and user", GOOD, 401, "UNAUTHORIZED"),
    ("a parameter twice", "GET", f"{HISTORY}?limit=5&limit=6", "operator", None, 400, "VALIDATION_ERROR"),
    ("wipe an unknown board as a user", "POST", f"{ADMIN}/boards/nope/periods/x/wipe", "user", GOOD, 403, "FORBIDDEN"),
    ("unknown user", "POST", f"{ADMIN}/users/nobody/disqualify", "operator", GOOD, 404, "USER_NOT_FOUND"),
    ("unknown user's history", "GET", f"{ADMIN}/users/nobody/history", "operator", None, 404, "USER_NOT_FOUND"),
    (
        "adjust an unknown user",
        "POST",
        f"{ADMIN}/boards/global/scores/nobody/adjust",
        "operator",
        {"delta": 1, **GOOD},
        404,
        "USER_NOT_FOUND",
    ),
    (
        "unknown board",
        "POST",
        f"{ADMIN}/boards/nope/scores/{CHEAT}/adjust",
        "operator",
        {"delta": 1, **GOOD},
        404,
        "BOARD_NOT_FOUND",
    ),
    (
        "wipe an unknown board",
        "POST",
        f"{ADMIN}/boards/nope/periods/current/wipe",
        "operator",
        GOOD,
        404,
        "BOARD_NOT_FOUND",
    ),
    (
        "unknown period",
        "POST",
        f"{ADMIN}/boards/weekly/periods/2020-W01/wipe",
        "operator",
        GOOD,
        404,
        "PERIOD_NOT_FOUND",
    ),
    (
        "adjust an unkept period",
        "POST",
        ADJ,
        "operator",
        {"delta": 1, "period": "1999", **GOOD},
        404,
        "PERIOD_NOT_FOUND",
    ),
    ("no reason", "POST", DQ, "operator", {}, 400, "VALIDATION_ERROR"),
    ("empty reason", "POST", DQ, "operator", {"reason": ""}, 400, "VALIDATION_ERROR"),
    ("reason too long", "POST", WIPE, "operator", {"reason": "x" * 501}, 400, "VALIDATION_ERROR"),
    ("number reason", "POST", DQ, "operator", {"reason": 7}, 400, "VALIDATION_ERROR"),
    # The audit record holds one line of text; PostgreSQL's text no NUL (it was a 500 there).
    ("NUL in the reason", "POST", DQ, "operator", {"reason": "a\x00b"}, 400, "VALIDATION_ERROR"),
    (
        "control character in the reason",
        "POST",
        ADJ,
        "operator",
        {"delta": 1, "reason": "a\x01b"},
        400,
        "VALIDATION_ERROR",
    ),
    ("reason ending in a newline", "POST", WIPE, "operator", {"reason": "checked\n"}, 400, "VALIDATION_ERROR"),
    ("line separator in the reason", "POST", DQ, "operator", {"reason": "a\u2028b"}, 400, "VALIDATION_ERROR"),
    ("C1 control in the reason", "POST", DQ, "operator", {"reason": "a\x85b"}, 400, "VALIDATION_ERROR"),
    # The audit record shows who did what and why: a reason that shows nothing says nothing, and
    # a bidirectional override reorders what follows it on the operator page.
    ("a reason of spaces", "POST", DQ, "operator", {"reason": "   "}, 400, "VALIDATION_ERROR"),
    ("a zero-width reason", "POST", DQ, "operator", {"reason": "\u200b\u2060"}, 400, "VALIDATION_ERROR"),
    ("no-break spaces alone", "POST", WIPE, "operator", {"reason": "\u00a0\u3000"}, 400, "VALIDATION_ERROR"),
    ("a right-to-left override", "POST", DQ, "operator", {"reason": "ok\u202edesrever"}, 400, "VALIDATION_ERROR"),
    ("a bidirectional isolate", "POST", DQ, "operator", {"reason": "a\u2067b"}, 400, "VALIDATION_ERROR"),
    ("near-miss field", "POST", ADJ, "operator", {"Delta": 5, **GOOD}, 400, "VALIDATION_ERROR"),
    ("no delta", "POST", ADJ, "operator", GOOD, 400, "VALIDATION_ERROR"),
    ("text delta", "POST", ADJ, "operator", {"delta": "5", **GOOD}, 400, "VALIDATION_ERROR"),
    ("fraction delta", "POST", ADJ, "operator", {"delta": 1.5, **GOOD}, 400, "VALIDATION_ERROR"),
    ("zero delta", "POST", ADJ, "operator", {"delta": 0, **GOOD}, 400, "VALIDATION_ERROR"),
    ("negative zero delta", "POST", ADJ, "operator", b'{"delta":-0.0,"reason":"checked"}', 400, "VALIDATION_ERROR"),
    ("delta beyond 2^53", "POST", ADJ, "operator", {"delta": 2**53 + 1, **GOOD}, 400, "VALIDATION_ERROR"),
    ("sum beyond 2^53", "POST", ADJ, "operator", {"delta": 2**53, **GOOD}, 400, "VALIDATION_ERROR"),
    ("not JSON", "POST", DQ, "operator", b"{not json", 400, "VALIDATION_ERROR"),
    ("invalid UTF-8", "POST", REMOVE, "operator", b'{"reason":"ok\xff"}', 400, "VALIDATION_ERROR"),
    ("non-ASCII user", "POST", f"{ADMIN}/users/%C3%A9/disqualify", "operator", GOOD, 400, "VALIDATION_ERROR"),
    ("bad period", "POST", f"{ADMIN}/boards/global/periods/{'p' * 40}/wipe", "operator", GOOD, 400, "VALIDATION_ERROR"),
    (
        "nested 1000 deep",
        "POST",
        DQ,
        "operator",
        b'{"reason":"ok","x":' + b"[" * 1000 + b"]" * 1000 + b"}",
        400,
        "VALIDATION_ERROR",
    ),
    ("oversize body", "POST", DQ, "operator", {"reason": "y" * 9000}, 413, "PAYLOAD_TOO_LARGE"),
    ("bad limit", "GET", f"{HISTORY}?limit=101", "operator", None, 400, "VALIDATION_ERROR"),
    ("wrong method", "GET", DQ, "operator", None, 405, "METHOD_NOT_ALLOWED"),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[c[0] for c in REFUSALS])
async def test_moderation_refusals_change_nothing(
    case: RefusalCase,
    flow: Flow,
    client: AppClient,
    boards: Boards,
    operator: dict[str, str],
    bearer: Any,
    snapshot: Snapshot,
) -> None:
    _, method, path, who, body, status, code = case
    await flow.award(CHEAT, "q1")
    await flow.award("bob", "q1")
    before, shown = await snapshot(), await boards.top("global")
    headers: Any = {
        "operator": operator,
        "user": bearer(CHEAT),
        "operator and user": CIMultiDict([*operator.items(), *bearer(CHEAT).items()]),
        None: {},
    }[who]
    answered, error = await send(client, method, path, headers, body)
    assert (answered, error["code"]) == (status, code), error
    assert await snapshot() == before
    assert await boards.top("global") == shown
