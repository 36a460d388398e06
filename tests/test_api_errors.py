"""Every error row of the contract, each with nothing changed after it; refusals that keep the token."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt
import msgspec
import pytest
from multidict import CIMultiDict

from app.config import Config
from app.tokens import ACTION_TOKEN_TYPE, key_id

from .conftest import ACTION_SECRET, JWT_SECRET, Flow, MakeClient, Snapshot, envelope, send


def _action_token(claims: dict[str, Any], *, secret: bytes = ACTION_SECRET, typ: str = ACTION_TOKEN_TYPE) -> str:
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": key_id(secret), "typ": typ})


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "userId": "alice",
        "actionType": "COMPLETE_QUEST",
        "actionId": "q1",
        "scoreIncrement": 100,
        "nonce": "n-1",
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return claims


def _expired_user_jwt() -> str:
    return jwt.encode({"sub": "alice", "exp": int(time.time()) - 3600}, JWT_SECRET, algorithm="HS256")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


UPDATE = "/api/v1/scoreboard/update"
INIT = "/api/v1/actions/initialize"

# (name, method, path, headers or None for alice's bearer, body or a builder using a fresh token, status, code)
Case = tuple[str, str, str, Callable[[Any], Mapping[str, str]] | None, Any, int, str]


def _with_token(**body: Any) -> Callable[[str], dict[str, Any]]:
    return lambda token: {"actionToken": token, "actionId": "q1", **body}


ERROR_CASES: list[Case] = [
    ("no bearer", "POST", UPDATE, lambda b: {}, _with_token(), 401, "UNAUTHORIZED"),
    ("not bearer scheme", "POST", INIT, lambda b: {"Authorization": "Basic abc"}, {}, 401, "UNAUTHORIZED"),
    ("malformed bearer", "POST", UPDATE, lambda b: _bearer("not.a.jwt"), _with_token(), 401, "UNAUTHORIZED"),
    ("expired bearer", "POST", UPDATE, lambda b: _bearer(_expired_user_jwt()), _with_token(), 401, "UNAUTHORIZED"),
    (
        "wrongly signed bearer",
        "GET",
        "/api/v1/users/alice/score",
        lambda b: _bearer(jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, b"x" * 40, algorithm="HS256")),
        None,
        401,
        "UNAUTHORIZED",
    ),
    (
        "action token as bearer",
        "POST",
        INIT,
        lambda b: _bearer(_action_token({"sub": "alice", "exp": int(time.time()) + 60}, secret=JWT_SECRET)),
        {"actionType": "COMPLETE_QUEST", "actionId": "q9"},
        401,
        "UNAUTHORIZED",
    ),
    ("malformed action token", "POST", UPDATE, None, {"actionToken": "abc", "actionId": "q1"}, 401, "INVALID_TOKEN"),
    (
        "forged action token",
        "POST",
        UPDATE,
        None,
        lambda token: {"actionToken": _action_token(_claims(), secret=b"y" * 40), "actionId": "q1"},
        401,
        "INVALID_TOKEN",
    ),
    (
        "user JWT as action token",
        "POST",
        UPDATE,
        None,
        lambda token: {"actionToken": _action_token(_claims(), typ="JWT"), "actionId": "q1"},
        401,
        "INVALID_TOKEN",
    ),
    (
        "expired action token",
        "POST",
        UPDATE,
        None,
        lambda token: {"actionToken": _action_token(_claims(exp=int(time.time()) - 1)), "actionId": "q1"},
        401,
        "TOKEN_EXPIRED",
    ),
    ("body userId not bearer", "POST", UPDATE, None, _with_token(userId="bob"), 403, "FORBIDDEN"),
    (
        "token of another user",
        "POST",
        UPDATE,
        lambda b: b("mallory"),
        _with_token(),
        403,
        "FORBIDDEN",
    ),
    (
        "initialize for another user",
        "POST",
        INIT,
        None,
        {"actionType": "COMPLETE_QUEST", "actionId": "q9", "userId": "bob"},
        403,
        "FORBIDDEN",
    ),
    ("unknown action type", "POST", INIT, None, {"actionType": "HACK", "actionId": "q9"}, 400, "INVALID_ACTION"),
    ("action id mismatch", "POST", UPDATE, None, _with_token(actionId="q2"), 400, "ACTION_MISMATCH"),
    ("not JSON", "POST", UPDATE, None, b"{not json", 400, "VALIDATION_ERROR"),
    ("JSON array", "POST", UPDATE, None, b"[]", 400, "VALIDATION_ERROR"),
    ("empty body", "POST", INIT, None, b"", 400, "VALIDATION_ERROR"),
    ("missing field", "POST", UPDATE, None, {"actionId": "q1"}, 400, "VALIDATION_ERROR"),
    ("wrong type", "POST", INIT, None, {"actionType": 5, "actionId": "q1"}, 400, "VALIDATION_ERROR"),
    (
        "id too long",
        "POST",
        INIT,
        None,
        {"actionType": "COMPLETE_QUEST", "actionId": "a" * 101},
        400,
        "VALIDATION_ERROR",
    ),
    ("id bad chars", "POST", INIT, None, {"actionType": "COMPLETE_QUEST", "actionId": "a b"}, 400, "VALIDATION_ERROR"),
    ("id unicode", "POST", INIT, None, {"actionType": "COMPLETE_QUEST", "actionId": "ünï"}, 400, "VALIDATION_ERROR"),
    ("id control", "POST", INIT, None, {"actionType": "COMPLETE_QUEST", "actionId": "a\x00b"}, 400, "VALIDATION_ERROR"),
    ("id empty", "POST", INIT, None, {"actionType": "COMPLETE_QUEST", "actionId": ""}, 400, "VALIDATION_ERROR"),
    (
        "id with a final newline",
        "POST",
        INIT,
        None,
        {"actionType": "COMPLETE_QUEST", "actionId": "quest-1\n"},
        400,
        "VALIDATION_ERROR",
    ),
    ("user id with a final newline", "GET", "/api/v1/users/alice%0A/score", None, None, 400, "VALIDATION_ERROR"),
    ("null field", "POST", UPDATE, None, _with_token(actionId=None), 400, "VALIDATION_ERROR"),
    ("limit zero", "GET", "/api/v1/scoreboard/top?limit=0", None, None, 400, "VALIDATION_ERROR"),
    ("limit too big", "GET", "/api/v1/scoreboard/top?limit=101", None, None, 400, "VALIDATION_ERROR"),
    ("limit not int", "GET", "/api/v1/scoreboard/top?limit=ten", None, None, 400, "VALIDATION_ERROR"),
    *(
        (f"limit {raw!r}", "GET", f"/api/v1/scoreboard/top?limit={quoted}", None, None, 400, "VALIDATION_ERROR")
        for raw, quoted in (
            ("1e2", "1e2"),
            ("+5", "%2B5"),
            (" 5", "%205"),
            ("5 ", "5%20"),
            ("5.0", "5.0"),
            ("0x10", "0x10"),
            ("010", "010"),
            ("\u0665", "%D9%A5"),  # an Arabic-Indic five: a digit to Python's int(), not to the contract
            ("1" * 5000, "1" * 5000),
            ("5\n", "5%0A"),
            ("-5", "-5"),
        )
    ),
    *(
        (
            f"bearer {name}",
            "POST",
            INIT,
            (lambda b, t=token: {"Authorization": f"Bearer {t}"}),
            None,
            401,
            "UNAUTHORIZED",
        )
        for name, token in (
            ("non-ASCII segment", "eyJhbGciOiJIUzI1NiJ9.é.x"),
            ("non-ASCII everywhere", "é.é.é"),
            ("non-ASCII signature", "eyJhbGciOiJIUzI1NiJ9.e30.é"),
        )
    ),
    ("nested 1000 deep", "POST", INIT, None, b'{"x":' + b"[" * 1000 + b"]" * 1000 + b"}", 400, "VALIDATION_ERROR"),
    (
        "nested 1000 deep in an ignored field",
        "POST",
        UPDATE,
        None,
        lambda token: (
            b'{"actionToken":"' + token.encode() + b'","actionId":"q1","x":' + b'{"a":' * 1000 + b"1" + b"}" * 1001
        ),
        400,
        "VALIDATION_ERROR",
    ),
    (
        "invalid UTF-8",
        "POST",
        INIT,
        None,
        b'{"actionType":"COMPLETE_QUEST","actionId":"q\xff"}',
        400,
        "VALIDATION_ERROR",
    ),
    (
        "invalid UTF-8 in an ignored field",
        "POST",
        INIT,
        None,
        b'{"actionType":"COMPLETE_QUEST","actionId":"q9","x":"\xc3\x28"}',
        400,
        "VALIDATION_ERROR",
    ),
    (
        "lone surrogate",
        "POST",
        UPDATE,
        None,
        lambda token: b'{"actionToken":"' + token.encode() + b'\\ud800","actionId":"q1"}',
        400,
        "VALIDATION_ERROR",
    ),
    (
        "lone surrogate in an ignored field",
        "POST",
        INIT,
        None,
        b'{"actionType":"COMPLETE_QUEST","actionId":"q9","x":"a\\ud800b"}',
        400,
        "VALIDATION_ERROR",
    ),
    ("bad user id", "GET", "/api/v1/users/a%20b/score", None, None, 400, "VALIDATION_ERROR"),
    ("a query parameter twice", "GET", "/api/v1/scoreboard/top?limit=5&limit=5", None, None, 400, "VALIDATION_ERROR"),
    ("an invalid second value", "GET", "/api/v1/scoreboard/top?limit=5&limit=abc", None, None, 400, "VALIDATION_ERROR"),
    (
        "two Authorization headers",
        "POST",
        INIT,
        lambda b: CIMultiDict([*b("alice").items(), *b("alice").items()]),
        {"actionType": "COMPLETE_QUEST", "actionId": "q9"},
        401,
        "UNAUTHORIZED",
    ),
    ("unknown user", "GET", "/api/v1/users/nobody/score", None, None, 404, "USER_NOT_FOUND"),
    ("unknown route", "GET", "/api/v1/nothing", None, None, 404, "NOT_FOUND"),
    ("wrong method", "DELETE", UPDATE, None, None, 405, "METHOD_NOT_ALLOWED"),
    ("wrong method on a read", "POST", "/api/v1/scoreboard/top", None, None, 405, "METHOD_NOT_ALLOWED"),
    ("unknown page", "GET", "/nothing/here", None, None, 404, "NOT_FOUND"),
    ("unknown static file", "GET", "/static/no/such.js", None, None, 404, "NOT_FOUND"),
    ("unknown path with a newline", "GET", "/api/v1/x%0Ay", None, None, 404, "NOT_FOUND"),
    ("huge body", "POST", UPDATE, None, b'{"actionToken":"' + b"a" * 20000 + b'"}', 413, "PAYLOAD_TOO_LARGE"),
    ("huge body on initialize", "POST", INIT, None, {"actionType": "x" * 20000}, 413, "PAYLOAD_TOO_LARGE"),
    ("WebSocket route without a handshake", "GET", "/ws/scoreboard", None, None, 400, "VALIDATION_ERROR"),
    *(
        (
            f"body not in its {encoding} Content-Encoding",
            "POST",
            INIT,
            lambda b, encoding=encoding: {**b("alice"), "Content-Encoding": encoding},
            b"abcde",
            400,
            "VALIDATION_ERROR",
        )
        for encoding in ("gzip", "deflate", "br")
    ),
    # Refused by aiohttp's HTTP parser, before any route: found by the fuzz run (tests/test_fuzz.py).
    ("request line too long", "GET", "/api/v1/scoreboard/top?limit=" + "1" * 9000, None, None, 400, "VALIDATION_ERROR"),
    (
        "header too long",
        "GET",
        "/api/v1/scoreboard/top",
        lambda b: {"X-Big": "a" * 9000},
        None,
        400,
        "VALIDATION_ERROR",
    ),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
async def test_error_rows(case: Case, flow: Flow, client: Any, bearer: Any, snapshot: Snapshot) -> None:
    _, method, path, headers, body, status, code = case
    token = await flow.token("alice", "q1")  # a live token that every rejection must leave usable
    before = await snapshot()
    sent = headers(bearer) if headers else bearer("alice")
    answered, error = await send(client, method, path, sent, body(token) if callable(body) else body)
    assert answered == status, error
    assert error["code"] == code and "Traceback" not in error["message"]
    assert await snapshot() == before
    assert (await flow.submit(token)).status == 200  # the token was not used up


CHALLENGE = 'Bearer realm="scoreboard"'
INVALID = CHALLENGE + ', error="invalid_token"'


@pytest.mark.parametrize(
    ("name", "headers", "body", "challenge"),
    [
        ("none sent", lambda b: {}, _with_token(), CHALLENGE),
        ("another scheme", lambda b: {"Authorization": "Basic YWxpY2U6eA=="}, _with_token(), CHALLENGE),
        ("an empty bearer", lambda b: {"Authorization": "Bearer "}, _with_token(), CHALLENGE),
        ("a malformed bearer", lambda b: _bearer("not.a.jwt"), _with_token(), INVALID),
        ("an expired bearer", lambda b: _bearer(_expired_user_jwt()), _with_token(), INVALID),
        ("a bearer too large", lambda b: _bearer("a" * 5_000), _with_token(), INVALID),
        (
            "two bearers",
            lambda b: CIMultiDict([*b("alice").items(), *b("alice").items()]),
            _with_token(),
            CHALLENGE + ', error="invalid_request"',
        ),
        # The user is signed in; the action token in the body failed: still a 401, so a challenge.
        (
            "a forged action token",
            None,
            lambda token: {"actionToken": _action_token(_claims(), secret=b"y" * 40), "actionId": "q1"},
            CHALLENGE,
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and not v.startswith("Bearer") else "",
)
async def test_every_401_names_its_challenge(
    name: str, headers: Any, body: Any, challenge: str, flow: Flow, client: Any, bearer: Any
) -> None:
    """RFC 9110: a 401 carries `WWW-Authenticate`; RFC 6750: `error` only where a token was sent."""
    token = await flow.token("alice", "q1")
    resp = await client.post(UPDATE, headers=headers(bearer) if headers else bearer("alice"), json=body(token))
    assert resp.status == 401, name
    await envelope(resp)
    assert resp.headers.getall("WWW-Authenticate") == [challenge], name


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("DELETE", UPDATE, "POST"), ("PUT", "/api/v1/scoreboard/top", "GET,HEAD"), ("POST", "/healthz", "GET,HEAD")],
)
async def test_wrong_method_names_the_allowed_ones(client: Any, method: str, path: str, allow: str) -> None:
    resp = await client.request(method, path, headers={"X-Request-ID": "wrong-method-1"})
    assert resp.status == 405 and (await envelope(resp))["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert resp.headers["Allow"] == allow
    # Unmatched requests pass the same edge as matched ones.
    assert resp.headers["X-Request-ID"] == "wrong-method-1"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_head_of_a_read_is_allowed(client: Any) -> None:
    resp = await client.head("/api/v1/scoreboard/top")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("application/json")


async def test_replayed_token_409(flow: Flow, snapshot: Snapshot) -> None:
    token = await flow.token()
    assert (await flow.submit(token)).status == 200
    before = await snapshot()
    resp = await flow.submit(token)
    assert resp.status == 409 and (await envelope(resp))["error"]["code"] == "TOKEN_ALREADY_USED"
    assert await snapshot() == before


async def test_action_already_completed(flow: Flow, snapshot: Snapshot) -> None:
    first = await flow.token("alice", "q1")
    second = await flow.token("alice", "q1")  # two tokens for one action, issued before either is used
    assert (await flow.submit(first)).status == 200
    before = await snapshot()
    resp = await flow.submit(second)
    assert resp.status == 409 and (await envelope(resp))["error"]["code"] == "ACTION_ALREADY_COMPLETED"
    resp = await flow.client.post(
        INIT, json={"actionType": "COMPLETE_QUEST", "actionId": "q1"}, headers=flow.bearer("alice")
    )
    assert resp.status == 409 and (await envelope(resp))["error"]["code"] == "ACTION_ALREADY_COMPLETED"
    assert await snapshot() == before


async def test_action_too_fast_keeps_token(flow: Flow, snapshot: Snapshot) -> None:
    token = await flow.token("alice", "p1", "SLOW_PUZZLE")
    before = await snapshot()
    resp = await flow.submit(token, action_id="p1")
    body = await envelope(resp)
    assert resp.status == 400 and body["error"]["code"] == "ACTION_TOO_FAST"
    assert await snapshot() == before


async def test_action_removed_from_catalog(make_client: MakeClient, bearer: Any, config: Config) -> None:
    client = await make_client(config)
    token = await Flow(client, bearer).token("alice", "q1", "DEFEAT_BOSS")
    await client.close()
    # Restarted with a catalog that no longer has the action, its tokens award nothing.
    actions = {k: v for k, v in config.actions.items() if k != "DEFEAT_BOSS"}
    trimmed = msgspec.structs.replace(config, settings=msgspec.structs.replace(config.settings, actions=actions))
    client = await make_client(trimmed)
    resp = await Flow(client, bearer).submit(token)
    assert resp.status == 400 and (await envelope(resp))["error"]["code"] == "INVALID_ACTION"


@pytest.mark.parametrize("expect", ["bogus", "100-continue-ish", "200-ok", "\u00e9t\u00e9", "100-continue, x"])
@pytest.mark.parametrize("path", ["/api/v1/scoreboard/update", "/api/v1/scoreboard/top", "/nowhere"])
async def test_an_expectation_other_than_100_continue_is_refused_in_the_envelope(
    flow: Flow, snapshot: Snapshot, path: str, expect: str
) -> None:
    before = await snapshot()
    token = await flow.token()
    rows = await snapshot()
    resp = await flow.client.post(
        path,
        json={"actionToken": token, "actionId": "q1"},
        headers={**flow.bearer("alice"), "Expect": expect.encode().decode("latin-1")},
    )
    body = await envelope(resp)
    assert resp.status == 400 and body["error"]["code"] == "VALIDATION_ERROR", body
    assert body["error"]["details"] == {"header": "Expect"}
    assert await snapshot() == rows != before  # the token was granted, the update changed nothing


async def test_expect_100_continue_goes_on_to_the_route(flow: Flow) -> None:
    token = await flow.token()
    resp = await flow.client.post(
        "/api/v1/scoreboard/update",
        json={"actionToken": token, "actionId": "q1"},
        headers=flow.bearer("alice"),
        expect100=True,
    )
    assert resp.status == 200, await resp.text()
    assert (await envelope(resp))["data"]["newScore"] == 100


@pytest.mark.parametrize("expect", [True, False], ids=["Expect: 100-continue", "no Expect"])
async def test_a_body_declared_too_large_is_refused_before_it_is_sent(flow: Flow, expect: bool) -> None:
    client = flow.client
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        request = "POST /api/v1/boards/global/lookup HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n"
        writer.write((request + ("Expect: 100-continue\r\n" if expect else "") + "\r\n").encode())
        await writer.drain()
        # No body byte is sent: the refusal comes all the same.
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)).decode()
        length = int(next(line for line in head.splitlines() if line.startswith("Content-Length:")).split(":")[1])
        body = await asyncio.wait_for(reader.readexactly(length), 3)
    finally:
        writer.close()
    assert head.startswith("HTTP/1.1 413 ") and "Connection: close" in head and "X-Request-ID" in head
    assert b'"code":"PAYLOAD_TOO_LARGE"' in body
