"""The operator page at /admin, in every storage set-up, through aiohttp's client: an admin JWT signs
in (a cookie only /admin gets, expiring with the token), the page shows every board's settings and
the held-award queue, its forms approve and reject (303 back, saying so) and sign out; a user's page
shows what is kept about them. Everything hostile or unauthorised gets a page naming its code and
changes nothing; the JWT is never in a page, a URL or a log line."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from html import unescape
from pathlib import Path
from typing import Any

import msgspec
import pytest

from app.api.admin_session import COOKIE
from app.api.edge import CSP
from app.api.keys import STORE
from app.auth import UserAuth

from .boards.scene import ACTIONS, AppClient, Boards, Clock, app_with_clock, boards_config
from .conftest import JWT_SECRET, Flow, Snapshot, envelope

# Every award of it is held for an operator.
CHEST = {"score": 10, "boards": ["global", "weekly"], "hold_over_per_hour": 0}
HOSTILE = '<img src=x onerror=alert("pwned")> Zoë 🏆'

AUTH = UserAuth(JWT_SECRET)


def jwt(user: str = "ops-1", *, roles: tuple[str, ...] = ("admin",), ttl: int = 3600) -> str:
    return AUTH.issue(user, name=user.title(), roles=roles, ttl_seconds=ttl)


@pytest.fixture
async def client(aiohttp_client: Any, db_path: Path, storage: dict[str, Any]) -> AppClient:
    """The boards of tests/boards/scene.py, with OPEN_CHEST, whose every award is held."""
    config = boards_config(db_path, storage, actions={**ACTIONS, "OPEN_CHEST": CHEST})
    app_client: AppClient = await aiohttp_client(app_with_clock(config, Clock(int(time.time() * 1000))))
    return app_client


class Console:
    """The operator page as a browser drives it: the session cookie kept by hand, one per console (the
    test client's jar is shared and emptied after each answer), forms sent with this site's Origin."""

    def __init__(self, client: AppClient) -> None:
        self.client = client
        self.origin = f"http://{client.host}:{client.port}"
        self.cookie: str | None = None

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {"Origin": self.origin, **extra}
        if self.cookie is not None:
            headers["Cookie"] = f"{COOKIE}={self.cookie}"
        return headers

    async def get(self, path: str, status: int = 200, **params: str) -> str:
        resp = await self.client.get(path, params=params, headers=self.headers(), allow_redirects=False)
        self.client.session.cookie_jar.clear()
        html = await resp.text()
        assert resp.status == status, html
        assert resp.content_type == "text/html" and resp.headers["Cache-Control"] == "no-store"
        assert resp.headers["Content-Security-Policy"] == CSP
        return html

    async def post(self, path: str, data: Any, **headers: str) -> Any:
        if isinstance(data, dict):
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        resp = await self.client.post(path, data=data, headers=self.headers(**headers), allow_redirects=False)
        self.client.session.cookie_jar.clear()
        return resp

    async def sign_in(self, token: str) -> Any:
        resp = await self.post("/admin/session", {"token": token})
        if resp.status == 303:
            self.cookie = resp.cookies[COOKIE].value
        return resp

    async def csrf(self) -> str:
        found = re.search(r'name="csrf" value="([0-9a-f]{64})"', await self.get("/admin"))
        assert found is not None
        return found[1]

    async def decide(self, held_id: int, verb: str, reason: str = "checked") -> Any:
        return await self.post(f"/admin/held/{held_id}/{verb}", {"csrf": await self.csrf(), "reason": reason})


@pytest.fixture
def console(client: AppClient) -> Console:
    return Console(client)


async def chest(flow: Flow, user: str, action_id: str) -> int:
    """An OPEN_CHEST award, held; its id."""
    token = await flow.token(user, action_id, "OPEN_CHEST")
    resp = await flow.submit(token, user, action_id)
    body = await envelope(resp)
    assert resp.status == 202, body
    held_id: int = body["data"]["id"]
    return held_id


def text(html: str) -> str:
    """The page's text, tags dropped and whitespace collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def row(html: str, attribute: str, value: object) -> str:
    """The text of the table row carrying `attribute="value"`."""
    found = re.search(rf'<tr {attribute}="{value}"[^>]*>(.*?)</tr>', html, re.S)
    assert found is not None, (attribute, value)
    return text(found[1])


async def test_without_a_session_every_page_is_the_sign_in_form(console: Console) -> None:
    pages: list[tuple[str, dict[str, str]]] = [("/admin", {}), ("/admin/users", {"id": "alice"})]
    for path, params in pages:
        html = await console.get(path, 200, **params)
        assert '<form method="post" action="/admin/session">' in html and 'type="password"' in html
        assert "Boards" not in text(html) and "sign-out" not in html


async def test_sign_in_sets_a_cookie_for_the_page_alone_that_ends_with_the_token(
    console: Console, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = jwt(ttl=600)
    resp = await console.sign_in(token)
    assert resp.status == 303 and resp.headers["Location"] == "/admin"
    (cookie,) = resp.headers.getall("Set-Cookie")
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    assert set(attributes) == {"httponly", "max-age", "path", "samesite"}  # not Secure over plain http
    assert attributes["path"] == "Path=/admin" and attributes["samesite"] == "SameSite=Strict"
    assert 590 <= int(attributes["max-age"].split("=")[1]) <= 600
    assert console.cookie == token
    html = await console.get("/admin")
    assert row(html, "data-board", "global").startswith("global default All time desc incr never UTC 12 number all")
    assert 'id="operator">ops-1<' in html
    assert token not in html  # the JWT is in the cookie only
    assert token not in caplog.text and "/admin/session" in caplog.text


async def test_the_page_lists_every_board_with_its_settings_retired_ones_too(
    console: Console, client: AppClient, flow: Flow
) -> None:
    admin = {"Authorization": f"Bearer {jwt()}"}
    created = await client.post("/api/v1/admin/boards", json={"id": "season-1", "title": HOSTILE}, headers=admin)
    assert created.status == 201
    assert (await client.delete("/api/v1/admin/boards/season-1", headers=admin)).status == 200
    await flow.award("alice", "q1")
    await console.sign_in(jwt())
    html = await console.get("/admin")
    assert row(html, "data-board", "weekly").startswith("weekly This week desc incr weekly UTC 2 number 20")
    assert row(html, "data-board", "daily").startswith("daily daily desc incr daily Europe/Berlin 1 number")
    assert row(html, "data-board", "trial").startswith("trial Time trial asc best never UTC 12 duration_ms all 0 no")
    assert row(html, "data-board", "global").endswith("all 1 no")
    retired = row(html, "data-board", "season-1")
    assert retired.startswith(f"season-1 {HOSTILE} desc incr never UTC 12 number — —") and "Z" in retired
    assert "<img" not in html  # the title is text, never markup
    assert [m for m in re.findall(r'data-board="([^"]+)"', html)] == [
        "global",
        "weekly",
        "daily",
        "trial",
        "high",
        "latest",
        "season-1",
    ]


async def test_approve_lands_reject_never_does_and_each_says_so(
    console: Console, client: AppClient, flow: Flow, bearer: Any, snapshot: Snapshot
) -> None:
    boards = Boards(client, bearer)
    first, second = await chest(flow, "alice", "c1"), await chest(flow, "bob", "c2")
    await console.sign_in(jwt())
    html = await console.get("/admin")
    assert row(html, "data-held", first).startswith(
        f"{first} alice OPEN_CHEST c1 10 hold_over_per_hour global (all), weekly ("
    )
    assert f'action="/admin/held/{first}/approve"' in html
    assert await boards.top("global") == []

    resp = await console.decide(first, "approve", "Replay checked")
    assert (resp.status, resp.headers["Location"]) == (303, f"/admin?done=approved&id={first}")
    assert await boards.top("global") == [("alice", 10)] and await boards.top("weekly") == [("alice", 10)]
    html = await console.get("/admin", done="approved", id=str(first))
    assert text(html).count(f"Held award {first} approved") == 1
    assert f'data-held="{first}"' not in html and f'data-held="{second}"' in html
    # A link alone cannot make the page report a decision nobody made.
    for done, held_id in (("rejected", second), ("rejected", first), ("approved", second), ("approved", 99_999)):
        html = await console.get("/admin", done=done, id=str(held_id))
        assert 'id="result"' not in html and f"Held award {held_id}" not in text(html), (done, held_id)

    before = await snapshot()
    resp = await console.decide(second, "reject", "21 chests in 4 minutes")
    assert (resp.status, resp.headers["Location"]) == (303, f"/admin?done=rejected&id={second}")
    after = await snapshot()
    assert {t: r for t, r in after.items() if t != "held_awards"} == {
        t: r for t, r in before.items() if t != "held_awards"
    }
    assert await boards.top("global") == [("alice", 10)]
    assert "No pending held awards" in text(await console.get("/admin"))
    decided = await console.get("/admin", held="rejected")
    assert "rejected by ops-1 at" in row(decided, "data-held", second)
    assert row(decided, "data-held", second).endswith("21 chests in 4 minutes")
    assert "Replay checked" in row(await console.get("/admin", held="approved"), "data-held", first)

    # A second decision is refused, naming the contract's code, and changes nothing.
    for verb in ("approve", "reject"):
        resp = await console.decide(second, verb)
        page = await resp.text()
        assert (resp.status, resp.content_type) == (
            409,
            "text/html",
        ) and '<code id="code">ALREADY_DECIDED</code>' in page
    resp = await console.decide(10**6, "approve")
    assert resp.status == 404 and ">NOT_FOUND<" in await resp.text()
    assert await snapshot() == after


async def test_concurrent_clicks_decide_once(
    console: Console, client: AppClient, flow: Flow, bearer: Any, snapshot: Snapshot
) -> None:
    held = await chest(flow, "alice", "c1")
    await console.sign_in(jwt())
    csrf = await console.csrf()
    clicks = [
        console.post(f"/admin/held/{held}/{verb}", {"csrf": csrf, "reason": f"click {i}"})
        for i, verb in enumerate(["approve", "approve", "reject", "approve", "reject", "reject"])
    ]
    answers = await asyncio.gather(*clicks)
    assert sorted(a.status for a in answers) == [303, 409, 409, 409, 409, 409]
    (won,) = [a for a in answers if a.status == 303]
    landed = won.headers["Location"].startswith("/admin?done=approved")
    assert await Boards(client, bearer).top("global") == ([("alice", 10)] if landed else [])
    (row_,) = (await snapshot())["held_awards"]
    assert ("approved" if landed else "rejected") in row_


async def test_sign_out_clears_the_cookie(console: Console) -> None:
    await console.sign_in(jwt())
    resp = await console.post("/admin/session/end", {"csrf": await console.csrf()})
    assert (resp.status, resp.headers["Location"]) == (303, "/admin?done=signed-out")
    cleared = resp.cookies[COOKIE]
    assert cleared.value == "" and cleared["max-age"] == "0" and cleared["path"] == "/admin"
    console.cookie = None
    html = await console.get("/admin", done="signed-out")
    assert "Signed out." in text(html) and 'action="/admin/session"' in html


async def test_a_user_page_shows_what_is_kept_about_them(console: Console, flow: Flow, client: AppClient) -> None:
    await flow.award("zoe", "q1")
    held = await chest(flow, "zoe", "c1")
    # A display name that is markup is shown as text.
    token = await flow.client.post(
        "/api/v1/actions/initialize",
        json={"actionType": "DEFEAT_BOSS", "actionId": "b1"},
        headers={"Authorization": f"Bearer {AUTH.issue('zoe', name=HOSTILE)}"},
    )
    assert token.status == 200
    await console.sign_in(jwt())
    html = await console.get("/admin/users", id="zoe")
    assert "<img" not in html and HOSTILE in text(html)
    assert row(html, "data-board", "global").startswith("global all 100 —")
    assert row(html, "data-board", "weekly").split()[2] == "100"
    assert "COMPLETE_QUEST q1 +100 0 → 100" in text(html)
    assert row(html, "data-held", held).startswith(f"{held} OPEN_CHEST c1 10 hold_over_per_hour pending")
    # From the queue, a user's id links to their page.
    assert '<a href="/admin/users?id=zoe">zoe</a>' in await console.get("/admin")


async def test_a_user_page_shows_their_standing_and_the_acts_on_them(
    console: Console, flow: Flow, client: AppClient
) -> None:
    await flow.award("mallory", "q1")
    admin = {"Authorization": f"Bearer {jwt()}"}
    await console.sign_in(jwt())
    assert "In good standing" in text(await console.get("/admin/users", id="mallory"))
    adjusted = await client.post(
        "/api/v1/admin/boards/global/scores/mallory/adjust", json={"delta": -40, "reason": HOSTILE}, headers=admin
    )
    assert adjusted.status == 200, await adjusted.text()
    disqualified = await client.post(
        "/api/v1/admin/users/mallory/disqualify", json={"reason": "speed hack"}, headers=admin
    )
    assert disqualified.status == 200, await disqualified.text()
    html = await console.get("/admin/users", id="mallory")
    assert "Disqualified since" in text(html) and "<img" not in html and HOSTILE in text(html)
    acts = re.findall(r'<tr data-act="(\d+)"', html)
    assert len(acts) == 2
    assert row(html, "data-act", acts[0]).startswith(f"{acts[0]} disqualify — — — ops-1 speed hack")
    assert row(html, "data-act", acts[1]).startswith(f"{acts[1]} adjust global all -40 ops-1")
    assert "operator's correction" in text(html)


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"id": "nobody"}, 404, "USER_NOT_FOUND"),
        ({"id": "zoë"}, 400, "VALIDATION_ERROR"),
        ({"id": "a" * 101}, 400, "VALIDATION_ERROR"),
        ({"id": "<script>"}, 400, "VALIDATION_ERROR"),
        ({}, 400, "VALIDATION_ERROR"),
    ],
)
async def test_a_user_page_refuses_what_is_no_user(
    console: Console, params: dict[str, str], status: int, code: str
) -> None:
    await console.sign_in(jwt())
    html = await console.get("/admin/users", status, **params)
    assert f'<code id="code">{code}</code>' in html and "<script>" not in html


@pytest.mark.parametrize(
    ("query", "status"),
    [("held=lost", 400), ("after=-1", 400), ("after=1e3", 400), ("done=hacked", 400), ("id=%FF%FE", 400)],
)
async def test_a_query_the_page_does_not_take_is_a_400_page(console: Console, query: str, status: int) -> None:
    await console.sign_in(jwt())
    resp = await console.client.get(f"/admin?{query}", headers=console.headers())
    assert (resp.status, resp.content_type) == (status, "text/html")
    assert '<code id="code">VALIDATION_ERROR</code>' in await resp.text()


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [
        (jwt("player-1", roles=()), 403, "FORBIDDEN"),
        (jwt("player-1", roles=("moderator", "admins")), 403, "FORBIDDEN"),
        (jwt(ttl=-60), 401, "UNAUTHORIZED"),
        (jwt()[:-4] + "AAAA", 401, "UNAUTHORIZED"),
        ("not a jwt", 401, "UNAUTHORIZED"),
        ("ünïcødé.🏆.jwt", 401, "UNAUTHORIZED"),
        ("e" * 4090, 400, "VALIDATION_ERROR"),  # more than a browser keeps in a cookie
    ],
)
async def test_sign_in_refuses_a_token_that_is_no_operators(
    console: Console, token: str, status: int, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    resp = await console.sign_in(token)
    html = await resp.text()
    assert (resp.status, resp.content_type) == (status, "text/html")
    assert f"<code>{code}</code>" in html and 'action="/admin/session"' in html  # the form again
    # A 401 page names its challenge as the API's 401s do; a 403 has none to name.
    challenge = ['Bearer realm="scoreboard", error="invalid_token"'] if status == 401 else []
    assert resp.headers.getall("WWW-Authenticate", []) == challenge
    assert COOKIE not in resp.cookies or resp.cookies[COOKIE].value == ""
    assert token not in html and token not in caplog.text


async def test_a_cookie_whose_token_no_longer_holds_gets_the_form_and_is_cleared(console: Console) -> None:
    for token, status in ((jwt("player-1", roles=()), 403), (jwt(ttl=-60), 401), ("x" * 5000, 401)):
        console.cookie = token
        resp = await console.client.get("/admin", headers=console.headers())
        console.client.session.cookie_jar.clear()
        html = await resp.text()
        assert resp.status == status and 'action="/admin/session"' in html
        assert resp.cookies[COOKIE].value == "" and resp.cookies[COOKIE]["path"] == "/admin"


def _form(**fields: str) -> str:
    return "&".join(f"{k}={v}" for k, v in fields.items())


async def test_a_form_that_is_not_the_pages_changes_nothing(
    console: Console, flow: Flow, snapshot: Snapshot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    held = await chest(flow, "alice", "c1")
    token = jwt()
    await console.sign_in(token)
    csrf = await console.csrf()
    other = await Console(console.client).sign_in(jwt("ops-2"))  # another session's token
    assert other.status == 303
    other_csrf = Console(console.client)
    other_csrf.cookie = other.cookies[COOKIE].value
    foreign = await other_csrf.csrf()
    approve = f"/admin/held/{held}/approve"
    form = "application/x-www-form-urlencoded"
    before = await snapshot()
    cases: list[tuple[str, Any, dict[str, str], int, str]] = [
        # (path, body, headers, status, code)
        (approve, _form(reason="ok"), {}, 400, "VALIDATION_ERROR"),  # no CSRF token
        (approve, _form(csrf="0" * 64, reason="ok"), {}, 403, "FORBIDDEN"),
        (approve, _form(csrf=foreign, reason="ok"), {}, 403, "FORBIDDEN"),  # another session's
        (approve, _form(csrf=csrf.upper(), reason="ok"), {}, 400, "VALIDATION_ERROR"),
        (approve, _form(csrf=csrf, reason="ok"), {"Origin": "null"}, 403, "FORBIDDEN"),
        (approve, _form(csrf=csrf, reason="ok"), {"Origin": "http://evil.example"}, 403, "FORBIDDEN"),
        (approve, _form(csrf=csrf, reason="ok"), {"Origin": console.origin + ".evil.example"}, 403, "FORBIDDEN"),
        (approve, _form(csrf=csrf, reason="ok"), {"Origin": console.origin.replace("http", "https")}, 403, "FORBIDDEN"),
        (approve, _form(csrf=csrf), {}, 400, "VALIDATION_ERROR"),  # no reason
        (approve, _form(csrf=csrf, reason=""), {}, 400, "VALIDATION_ERROR"),
        (approve, _form(csrf=csrf, reason="a%0Ab"), {}, 400, "VALIDATION_ERROR"),  # not one line
        (approve, _form(csrf=csrf, reason="%00"), {}, 400, "VALIDATION_ERROR"),
        (approve, _form(csrf=csrf, reason="r" * 501), {}, 400, "VALIDATION_ERROR"),
        (approve, _form(csrf=csrf, reason="%FF%FE"), {}, 400, "VALIDATION_ERROR"),  # not UTF-8
        (approve, f"csrf={csrf}&reason=ok".encode() + "é".encode(), {}, 400, "VALIDATION_ERROR"),  # raw bytes
        (approve, _form(csrf=csrf, reason="ok") + "&reason=two", {}, 400, "VALIDATION_ERROR"),
        (approve, _form(csrf=csrf, reason="ok", approve="yes"), {}, 400, "VALIDATION_ERROR"),  # no such field
        (approve, _form(csrf=csrf, reason="ok") + "&x=1" * 20, {}, 400, "VALIDATION_ERROR"),
        (
            approve,
            msgspec.json.encode({"csrf": csrf, "reason": "ok"}),
            {"Content-Type": "application/json"},
            400,
            "VALIDATION_ERROR",
        ),
        (approve, _form(csrf=csrf, reason="r" * 9000), {}, 413, "PAYLOAD_TOO_LARGE"),
        ("/admin/held/abc/approve", _form(csrf=csrf, reason="ok"), {}, 400, "VALIDATION_ERROR"),
        ("/admin/held/0/reject", _form(csrf=csrf, reason="ok"), {}, 400, "VALIDATION_ERROR"),
        ("/admin/held/99999999999999999999/reject", _form(csrf=csrf, reason="ok"), {}, 400, "VALIDATION_ERROR"),
        ("/admin/session/end", _form(csrf="0" * 64), {}, 403, "FORBIDDEN"),
        ("/admin/session/end", _form(csrf=csrf), {"Origin": "http://evil.example"}, 403, "FORBIDDEN"),
        ("/admin/session", _form(token=token), {"Origin": "http://evil.example"}, 403, "FORBIDDEN"),
    ]
    for path, body, headers, status, code in cases:
        resp = await console.post(path, body, **{"Content-Type": form, **headers})
        html = await resp.text()
        assert (resp.status, resp.content_type) == (status, "text/html"), (path, body, headers, html)
        assert f"<code>{code}</code>" in html or f'<code id="code">{code}</code>' in html, (path, body, html)
        assert "Set-Cookie" not in resp.headers or path == "/admin/session", (path, body)
    # Without the cookie (a form another site made a browser send), whatever the Origin says.
    console.cookie = None
    resp = await console.post(approve, _form(csrf=csrf, reason="ok"), **{"Content-Type": form})
    assert resp.status == 401 and 'action="/admin/session"' in await resp.text()
    assert await snapshot() == before
    assert token not in caplog.text and csrf not in caplog.text


async def test_the_session_is_secure_behind_a_trusted_https_proxy(
    aiohttp_client: Any, db_path: Path, storage: dict[str, Any]
) -> None:
    proxied = boards_config(db_path, storage, server={"trusted_proxies": ["127.0.0.1"]})
    console = Console(await aiohttp_client(app_with_clock(proxied, Clock(int(time.time() * 1000)))))
    https = console.origin.replace("http://", "https://")
    # The proxy says https: the cookie is Secure and the page's Origin is https.
    resp = await console.post("/admin/session", {"token": jwt()}, Origin=https, **{"X-Forwarded-Proto": "https"})
    assert resp.status == 303 and resp.cookies[COOKIE]["secure"] is True
    # Sent to the server directly over http, the same Origin is another site's.
    resp = await console.post("/admin/session", {"token": jwt()}, Origin=https)
    assert resp.status == 403


async def test_a_proxy_that_is_not_trusted_is_not_believed(console: Console) -> None:
    resp = await console.post("/admin/session", {"token": jwt()}, **{"X-Forwarded-Proto": "https"})
    assert resp.status == 303 and not resp.cookies[COOKIE]["secure"]


async def test_the_page_has_the_live_pages_policy_and_no_script(console: Console, client: AppClient) -> None:
    live = await client.get("/")
    await console.sign_in(jwt())
    resp = await client.get("/admin", headers=console.headers())
    html = await resp.text()
    assert resp.headers["Content-Security-Policy"] == live.headers["Content-Security-Policy"] == CSP
    assert "form-action 'self'" in CSP and "frame-ancestors 'none'" in CSP
    assert "<script" not in html and "style=" not in html and "<style" not in html
    assert (await client.get("/static/admin.css")).status == 200


async def test_the_role_is_the_configured_one(aiohttp_client: Any, db_path: Path, storage: dict[str, Any]) -> None:
    config = boards_config(db_path, storage, auth={"admin_role": "ops"})
    console = Console(await aiohttp_client(app_with_clock(config, Clock(int(time.time() * 1000)))))
    assert (await console.sign_in(jwt(roles=("admin",)))).status == 403
    assert (await console.sign_in(jwt(roles=("ops",)))).status == 303
    assert 'id="operator">ops-1<' in await console.get("/admin")


async def test_the_page_shows_the_audit_chains_head_as_anchor_prints_it(
    console: Console, client: AppClient, flow: Flow
) -> None:
    await console.sign_in(jwt())
    assert 'id="audit-empty"' in await console.get("/admin")
    await flow.award("alice", "q1")
    await flow.award("bob", "q2")
    store = client.app[STORE]
    while await store.seal(128):
        pass
    seq, head = await store.audit_head()
    html = await console.get("/admin")
    assert seq >= 4  # two awards, each on its boards
    assert f'<span id="audit-seq">{seq}</span>' in html and f'<code id="audit-hash">{head}</code>' in html


@pytest.mark.parametrize(
    ("cookie", "status"),
    [(None, 401), (jwt("player-1", roles=()), 403), (jwt(ttl=-60), 401)],
)
async def test_a_form_without_a_session_is_refused_before_its_fields_are_read(
    console: Console, cookie: str | None, status: int
) -> None:
    # Who sends it comes first, as on the API: a malformed form from nobody is 401, not 400.
    console.cookie = cookie
    for form in ({"csrf": "x", "reason": ""}, {"unknown": "field"}, "not a form"):
        resp = await console.post(
            "/admin/held/0/approve", form, **{"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert resp.status == status, await resp.text()
