"""HTTP tests: every route's success, limits, health, and what every answer carries."""

from __future__ import annotations

import logging
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import msgspec
import pytest

from app.api.page import (
    TIE_FIRST,
    TIE_LEGENDS,
    TIE_SUBSCORE,
    TIE_TITLES,
    duration_text,
    period_label,
    players_text,
    score_text,
    tie_reasons,
)
from app.logs import JsonFormatter

from .boards.scene import AppClient, Boards, boards_config
from .conftest import Flow, MakeClient, Snapshot, envelope


async def test_top_starts_empty(client: Any) -> None:
    resp = await client.get("/api/v1/scoreboard/top")
    body = await envelope(resp)
    assert resp.status == 200
    assert body["data"]["leaderboard"] == []
    assert body["data"]["updatedAt"].endswith("Z")


async def test_full_flow(flow: Flow, client: Any, bearer: Any) -> None:
    resp = await client.post(
        "/api/v1/actions/initialize",
        json={"actionType": "COMPLETE_QUEST", "actionId": "quest-1", "userId": "alice"},
        headers=bearer("alice"),
    )
    init = (await envelope(resp))["data"]
    assert init["expectedScore"] == 100
    assert init["expiresAt"].endswith("Z")
    resp = await flow.submit(init["actionToken"], action_id="quest-1", userId="alice")
    data = (await envelope(resp))["data"]
    assert data["userId"] == "alice"
    assert (data["previousScore"], data["newScore"], data["scoreIncrement"], data["rank"]) == (0, 100, 100, 1)
    assert [e["userId"] for e in data["leaderboard"]] == ["alice"]

    top = (await envelope(await client.get("/api/v1/scoreboard/top")))["data"]["leaderboard"]
    assert top[0]["rank"] == 1 and top[0]["username"] == "Alice" and top[0]["score"] == 100
    assert top[0]["lastUpdated"].endswith("Z")

    score = (await envelope(await client.get("/api/v1/users/alice/score", headers=bearer("bob"))))["data"]
    assert score == {"userId": "alice", "username": "Alice", "score": 100, "rank": 1, "percentile": 0.0}


async def test_ranking_ties_and_percentile(flow: Flow, client: Any, bearer: Any) -> None:
    await flow.award("carol", "a")
    await flow.award("alice", "a")
    await flow.award("bob", "a", "DEFEAT_BOSS")
    top = (await envelope(await client.get("/api/v1/scoreboard/top")))["data"]["leaderboard"]
    # bob leads; carol and alice tie at 100 and carol got there first.
    assert [(e["rank"], e["userId"]) for e in top] == [(1, "bob"), (2, "carol"), (3, "alice")]
    alice = (await envelope(await client.get("/api/v1/users/alice/score", headers=bearer())))["data"]
    assert alice["rank"] == 3 and alice["percentile"] == 0.0
    bob = (await envelope(await client.get("/api/v1/users/bob/score", headers=bearer())))["data"]
    assert bob["percentile"] == 66.67


async def test_top_limit(flow: Flow, client: Any) -> None:
    for i in range(12):
        await flow.award(f"u{i:02d}", "a")
    assert len((await envelope(await client.get("/api/v1/scoreboard/top")))["data"]["leaderboard"]) == 10
    data = (await envelope(await client.get("/api/v1/scoreboard/top?limit=3")))["data"]
    assert [e["rank"] for e in data["leaderboard"]] == [1, 2, 3]
    everyone = (await envelope(await client.get("/api/v1/scoreboard/top?limit=100")))["data"]
    assert len(everyone["leaderboard"]) == 12
    # updatedAt: when what is shown last changed (the same fixed-width format sorts by time).
    for answer in (data, everyone):
        assert answer["updatedAt"] == max(e["lastUpdated"] for e in answer["leaderboard"])


async def test_new_display_name_reaches_the_cached_top(flow: Flow, client: Any, bearer: Any) -> None:
    await flow.award("alice", "a")
    for _ in range(2):  # the second answer is the cached one
        top = (await envelope(await client.get("/api/v1/scoreboard/top")))["data"]["leaderboard"]
        assert [e["username"] for e in top] == ["Alice"]
    resp = await client.post(
        "/api/v1/actions/initialize",
        json={"actionType": "COMPLETE_QUEST", "actionId": "b"},
        headers=bearer("alice", name="Alice the Great"),
    )
    assert resp.status == 200
    top = (await envelope(await client.get("/api/v1/scoreboard/top")))["data"]["leaderboard"]
    assert [(e["username"], e["score"]) for e in top] == [("Alice the Great", 100)]


async def test_known_user_without_award(flow: Flow, client: Any, bearer: Any) -> None:
    await flow.token("dave")  # initialize creates the user row, no award yet
    data = (await envelope(await client.get("/api/v1/users/dave/score", headers=bearer())))["data"]
    assert data == {"userId": "dave", "username": "Dave", "score": 0, "rank": None, "percentile": None}


async def test_name_refreshed_from_claims(flow: Flow, client: Any, bearer: Any) -> None:
    await flow.award("alice", "a")
    resp = await client.post(
        "/api/v1/actions/initialize",
        json={"actionType": "COMPLETE_QUEST", "actionId": "b"},
        headers=bearer("alice", "Alice the Great"),
    )
    assert resp.status == 200
    top = (await envelope(await client.get("/api/v1/scoreboard/top")))["data"]["leaderboard"]
    assert top[0]["username"] == "Alice the Great"


async def test_token_survives_rejections_and_then_awards(flow: Flow, client: Any, snapshot: Snapshot) -> None:
    """After a 403, 400 or 429 the rightful owner can still complete the action with the token."""
    token = await flow.token("alice", "q1")
    before = await snapshot()
    assert (await flow.submit(token, user="mallory")).status == 403
    assert (await flow.submit(token, action_id="other")).status == 400
    assert (await flow.submit(token, userId="bob")).status == 403
    assert await snapshot() == before
    assert (await flow.submit(token)).status == 200


async def test_rate_limited_update_does_not_burn_token(
    make_client: MakeClient, bearer: Any, snapshot: Snapshot
) -> None:
    client = await make_client(limits={"updates_per_minute": 2})
    flow = Flow(client, bearer)
    token = await flow.token("alice", "q1")
    other = await flow.token("alice", "q2")
    assert (await flow.submit("garbage")).status == 401  # counts: every call counts
    assert (await flow.submit(other, action_id="q2")).status == 200
    before = await snapshot()
    resp = await flow.submit(token)
    body = await envelope(resp)
    assert resp.status == 429 and body["error"]["code"] == "RATE_LIMITED"
    assert int(resp.headers["Retry-After"]) >= 1
    assert await snapshot() == before
    # Another user is not affected by alice's limit.
    bob_token = await flow.token("bob", "q1")
    assert (await flow.submit(bob_token, user="bob")).status == 200


async def test_ip_rate_limit_covers_api_routes(make_client: MakeClient) -> None:
    client = await make_client(limits={"ip_requests_per_minute": 3})
    statuses = [(await client.get("/api/v1/scoreboard/top")).status for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    resp = await client.get("/api/v1/scoreboard/top")
    assert (await envelope(resp))["error"]["code"] == "RATE_LIMITED" and "Retry-After" in resp.headers
    assert (await client.get("/healthz")).status == 200  # not under /api/


async def test_ip_limit_uses_forwarded_for_only_behind_trusted_proxy(make_client: MakeClient) -> None:
    client = await make_client(limits={"ip_requests_per_minute": 1}, server={"trusted_proxies": ["127.0.0.1"]})
    for ip in ("203.0.113.1", "203.0.113.2"):
        resp = await client.get("/api/v1/scoreboard/top", headers={"X-Forwarded-For": ip})
        assert resp.status == 200
    resp = await client.get("/api/v1/scoreboard/top", headers={"X-Forwarded-For": "203.0.113.1"})
    assert resp.status == 429


async def test_forwarded_for_ignored_from_untrusted_peer(make_client: MakeClient) -> None:
    client = await make_client(limits={"ip_requests_per_minute": 1})
    assert (await client.get("/api/v1/scoreboard/top", headers={"X-Forwarded-For": "203.0.113.1"})).status == 200
    assert (await client.get("/api/v1/scoreboard/top", headers={"X-Forwarded-For": "203.0.113.2"})).status == 429


async def test_health(client: Any) -> None:
    assert (await envelope(await client.get("/healthz")))["data"] == {"status": "ok"}
    assert (await envelope(await client.get("/readyz")))["data"] == {"status": "ready"}


async def test_readyz_reports_closed_store(client: Any) -> None:
    from app.api.keys import STORE

    lines: list[dict[str, Any]] = []

    class Lines(logging.Handler):  # formats as the server's handler does: when the line is logged
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(msgspec.json.decode(JsonFormatter().format(record)))

    handler = Lines()
    logging.getLogger("app.api.views").addHandler(handler)
    try:
        await client.app[STORE].close()
        resp = await client.get("/readyz", headers={"X-Request-ID": "ready-check-1"})
    finally:
        logging.getLogger("app.api.views").removeHandler(handler)
    error = (await envelope(resp))["error"]
    assert resp.status == 503 and error["code"] == "SERVICE_UNAVAILABLE"
    assert "details" not in error  # the exception's class was named here; the log keeps it
    (line,) = [line for line in lines if line["message"] == "readiness check failed"]
    assert line["correlationId"] == "ready-check-1" and "ServiceUnavailable" in line["exception"]


async def test_internal_error_is_enveloped_without_trace(client: Any, caplog: pytest.LogCaptureFixture) -> None:
    from app.api.keys import SCOREBOARD

    def explode(limit: int) -> None:
        raise RuntimeError("secret internals")

    client.app[SCOREBOARD].top = explode
    resp = await client.get("/api/v1/scoreboard/top")
    body = await envelope(resp)
    assert resp.status == 500 and body["error"] == {"code": "INTERNAL_ERROR", "message": "Internal server error"}
    assert "secret internals" not in await resp.text()
    assert any("secret internals" in (r.exc_text or "") or r.exc_info for r in caplog.records)


@pytest.mark.parametrize(
    "path", ["/api/v1/scoreboard/top", "/healthz", "/", "/api/docs", "/static/board.js", "/favicon.ico", "/nowhere"]
)
async def test_every_answer_carries_the_security_headers_once(client: Any, path: str) -> None:
    resp = await client.get(path)
    for name, value in (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")):
        assert resp.headers.getall(name) == [value], (path, name)
    assert len(resp.headers.getall("X-Request-ID")) == 1
    is_html = resp.headers["Content-Type"].startswith("text/html")
    assert ("Content-Security-Policy" in resp.headers) == is_html


class _PageView(HTMLParser):
    """What the live page shows, as a visitor reads it: tabs, title, notice, period options, rows,
    the rows' tie marks, links."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.title = ""  # of the browser tab
        self.tabs: list[tuple[str, bool, str]] = []  # href, aria-current, text
        self.links: list[tuple[str, str]] = []  # href, text of the links that are not tabs
        self.rows: list[tuple[str, str, str]] = []  # user, username, score as shown
        self.ties: dict[str, str | None] = {}  # user -> the title of their row's tie mark, if shown
        self.options: list[tuple[str, str]] = []
        self.texts: dict[str, str] = {}  # by element id
        self.hidden: set[str] = set()  # ids of the elements not shown
        self.scripts: list[dict[str, str | None]] = []
        self._open: list[tuple[str, dict[str, str | None]]] = []
        self._text: list[str] = []
        self._name = self._score = ""  # of the row being read
        self._tie: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs))
        found = dict(attrs)
        if "id" in found and "hidden" in found:
            self.hidden.add(str(found["id"]))
        if tag == "tr":
            self._tie = None
        if tag == "span" and found.get("class") == "tie" and "hidden" not in found:
            self._tie = str(found.get("title"))
        if tag in {"a", "option", "h1", "p", "th", "td", "span", "tr", "title"}:
            self._open.append((tag, dict(attrs)))
            self._text = []

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open[-1][0] != tag:
            return
        _, attrs = self._open.pop()
        text = "".join(self._text).strip()
        if tag == "a" and "data-board" in attrs:
            self.tabs.append((str(attrs["href"]), attrs.get("aria-current") == "page", text))
        elif tag == "a":
            self.links.append((str(attrs["href"]), text))
        elif tag == "title":
            self.title = text
        elif tag == "option":
            self.options.append((str(attrs["value"]), text))
        elif tag == "span" and attrs.get("class") == "name":
            self._name = text
        elif tag == "td" and attrs.get("class") == "col-score":
            self._score = text
        elif tag == "tr" and "data-user-id" in attrs:
            self.rows.append((str(attrs["data-user-id"]), self._name, self._score))
            self.ties[str(attrs["data-user-id"])] = self._tie
        if "id" in attrs:
            self.texts[str(attrs["id"])] = text
        if tag != "tr":
            self._text = []


@pytest.fixture
async def boards_client(make_client: MakeClient, db_path: Path, storage: dict[str, Any]) -> AppClient:
    """A server with the boards of tests/boards/scene.py, on the real clock."""
    return await make_client(boards_config(db_path, storage))


async def _page(client: AppClient, query: str) -> _PageView:
    resp = await client.get(f"/{query}")
    html = await resp.text()
    assert resp.status == 200, html
    assert resp.content_type == "text/html" and "default-src 'self'" in resp.headers["Content-Security-Policy"]
    # Scripts are the page's own files: no inline code the policy would have to allow.
    assert all(s.get("src") for s in _PageView(html).scripts) and "<script>" not in html
    return _PageView(html)


async def test_page_renders_the_board_of_the_query(boards_client: AppClient, bearer: Any) -> None:
    flow = Flow(boards_client, bearer)
    await flow.award("alice", "q1", "COMPLETE_QUEST")  # global, weekly, daily
    await flow.award("bob", "w1", "WEEKLY_ONLY")
    boards = Boards(boards_client, bearer)
    await boards.write("trial", {"userId": "cy", "score": 61_234}, key="t1")
    await boards.write("trial", {"userId": "dan", "score": 3_723_004}, key="t2")
    listed = (await envelope(await boards_client.get("/api/v1/boards")))["data"]["boards"]
    week = next(b["period"]["id"] for b in listed if b["id"] == "weekly")

    weekly = await _page(boards_client, "?board=weekly")
    assert weekly.tabs == [(f"/?board={b['id']}", b["id"] == "weekly", b["title"]) for b in listed]
    assert weekly.texts["board-title"] == "This week" and weekly.texts["score-head"] == "Score"
    assert weekly.rows == [("alice", "Alice", "100"), ("bob", "Bob", "7")]
    assert weekly.options == [("current", f"Current · Week {week}")]
    assert "notice" not in weekly.texts

    trial = await _page(boards_client, "?board=trial")
    assert trial.texts["board-title"] == "Time trial" and trial.texts["score-head"] == "Time"
    assert trial.rows == [("cy", "cy", "1:01.234"), ("dan", "dan", "1:02:03.004")]  # users of a trusted server
    assert trial.options == [("current", "Current · All time")]

    default = await _page(boards_client, "")
    assert [t for t in default.tabs if t[1]] == [("/?board=global", True, "All time")]
    assert default.rows == [("alice", "Alice", "100")] and "notice" not in default.texts
    # The first of a repeated parameter, as for every other query.
    assert (await _page(boards_client, "?board=weekly&board=trial")).texts["board-title"] == "This week"


@pytest.mark.parametrize(
    "query",
    [
        "?board=nope",
        "?board=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "?board=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
        "?board=%ff%fe",  # not UTF-8
        "?board=%C3%28",
        "?board=%E2%80%AEweekly",  # a right-to-left override before a real id
        "?board=weekly%0A",
        "?board=weekly%00",
        "?board=WEEKLY",
        "?board=" + "a" * 5000,
        "?board=" + "w" * 65,
        "?board[]=weekly&board=../weekly",
    ],
)
async def test_page_shows_the_default_board_for_a_board_it_cannot_show(
    boards_client: AppClient, bearer: Any, query: str
) -> None:
    await Flow(boards_client, bearer).award("alice", "q1", "COMPLETE_QUEST")
    page = await _page(boards_client, query)
    assert page.texts["notice"] == "There is no board with that id; showing All time."
    assert page.texts["board-title"] == "All time" and page.rows == [("alice", "Alice", "100")]
    assert [t for t in page.tabs if t[1]] == [("/?board=global", True, "All time")]
    html = await (await boards_client.get(f"/{query}")).text()
    assert "alert" not in html and "onerror" not in html and "a" * 100 not in html  # never echoed


GAME = '<script>alert("pwned")</script> & Ünïcødé 🏆 ゲーム'


async def test_page_names_the_game_as_text(make_client: MakeClient) -> None:
    client = await make_client(server={"title": GAME})
    html = await (await client.get("/")).text()
    assert "<script>alert" not in html and html.count("&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; &amp;") == 2
    page = await _page(client, "")
    assert page.title == f"{GAME} — global"  # the one board of a configuration without [boards]
    assert page.texts["game-title"] == GAME and page.texts["board-title"] == "global"
    default = await _page(await make_client(), "")
    assert default.title == "Scoreboard — global" and default.texts["game-title"] == "Scoreboard"


async def test_page_explains_ties_and_counts_players(boards_client: AppClient, bearer: Any) -> None:
    boards = Boards(boards_client, bearer)
    empty = await _page(boards_client, "?board=high")
    assert empty.texts["player-count"] == "0 players" and "tie-legend" in empty.hidden and empty.ties == {}
    assert ("/api/docs", "API docs") in empty.links

    await boards.write("high", {"userId": "ann", "score": 50}, key="h1")
    await boards.write("high", {"userId": "ben", "score": 50}, key="h2")  # the same score, later
    await boards.write("high", {"userId": "cy", "score": 80}, key="h3")
    page = await _page(boards_client, "?board=high")
    assert [user for user, _, _ in page.rows] == ["cy", "ann", "ben"]
    assert page.ties == {"cy": None, "ann": TIE_TITLES[TIE_FIRST], "ben": TIE_TITLES[TIE_FIRST]}
    assert page.texts["player-count"] == "3 players" and "tie-legend" not in page.hidden
    assert page.texts["tie-legend-text"] == TIE_LEGENDS[TIE_FIRST]

    # A subscore ranks equal scores before the time they were reached does.
    await boards.write("high", {"userId": "dee", "score": 50, "subscore": 2}, key="h4")
    page = await _page(boards_client, "?board=high")
    assert [user for user, _, _ in page.rows] == ["cy", "dee", "ann", "ben"]
    assert page.ties == {"cy": None, **dict.fromkeys(["dee", "ann", "ben"], TIE_TITLES[TIE_SUBSCORE])}
    assert page.texts["player-count"] == "4 players"
    assert page.texts["tie-legend-text"] == TIE_LEGENDS[TIE_SUBSCORE]


def test_ties_and_player_counts_as_the_page_writes_them() -> None:
    first, sub = TIE_FIRST, TIE_SUBSCORE
    assert tie_reasons([]) == [] and tie_reasons([(5, None)]) == [None]
    assert tie_reasons([(9, None), (5, None), (5, None), (3, None)]) == [None, first, first, None]
    assert tie_reasons([(5, None), (5, 0), (4, 1), (4, 2), (4, 2)]) == [first, first, sub, sub, sub]  # absent = 0
    assert tie_reasons([(7, None), (5, None), (3, None)]) == [None, None, None]
    assert [players_text(n) for n in (0, 1, 2, 1234, 1_000_000)] == [
        "0 players",
        "1 player",
        "2 players",
        "1,234 players",
        "1,000,000 players",
    ]


def test_scores_and_periods_as_the_page_writes_them() -> None:
    assert [duration_text(ms) for ms in (0, 999, 59_999, 61_234, 3_599_999, 3_600_000, 3_723_004, -61_234)] == [
        "0:00.000",
        "0:00.999",
        "0:59.999",
        "1:01.234",
        "59:59.999",
        "1:00:00.000",
        "1:02:03.004",
        "-1:01.234",
    ]
    assert score_text(61_234, "duration_ms") == "1:01.234" and score_text(61_234, "number") == "61234"
    assert [period_label(p) for p in ("all", "2026-W49", "2026-12-02", "2026-12", "2026-12-02T10:30", "odd")] == [
        "All time",
        "Week 2026-W49",
        "Day 2026-12-02",
        "Month 2026-12",
        "Period from 2026-12-02 10:30",
        "odd",
    ]


async def test_the_icon_browsers_ask_for_is_there(client: Any) -> None:
    resp = await client.get("/favicon.ico")
    icon = await resp.read()
    assert resp.status == 200 and resp.content_type == "image/vnd.microsoft.icon"
    assert resp.headers["Cache-Control"] == "public, max-age=300"
    # An icon directory of one 32x32 image, stored as the PNG that follows the directory.
    assert icon[:6] == b"\x00\x00\x01\x00\x01\x00" and icon[6:8] == b"\x20\x20" and icon[22:30] == b"\x89PNG\r\n\x1a\n"


async def test_the_action_catalog_is_public(boards_client: AppClient, bearer: Any) -> None:
    resp = await boards_client.get("/api/v1/actions")
    assert resp.status == 200
    assert (await envelope(resp))["data"] == {
        "actions": [
            {
                "type": "COMPLETE_QUEST",
                "score": 100,
                "minSeconds": 0.0,
                "boards": ["global", "weekly", "daily"],
                "attest": False,
                "holdOverPerHour": None,
                "holdOver": None,
                "holdWithinS": None,
                "maxScorePerHour": None,
                "velocity": None,
                "rateLimit": None,
            },
            # The default board.
            {
                "type": "DEFEAT_BOSS",
                "score": 500,
                "minSeconds": 0.0,
                "boards": ["global"],
                "attest": False,
                "holdOverPerHour": None,
                "holdOver": None,
                "holdWithinS": None,
                "maxScorePerHour": None,
                "velocity": None,
                "rateLimit": None,
            },
            {
                "type": "SLOW_PUZZLE",
                "score": 50,
                "minSeconds": 30.0,
                "boards": ["global"],
                "attest": False,
                "holdOverPerHour": None,
                "holdOver": None,
                "holdWithinS": None,
                "maxScorePerHour": None,
                "velocity": None,
                "rateLimit": None,
            },
            {
                "type": "WEEKLY_ONLY",
                "score": 7,
                "minSeconds": 0.0,
                "boards": ["weekly"],
                "attest": False,
                "holdOverPerHour": None,
                "holdOver": None,
                "holdWithinS": None,
                "maxScorePerHour": None,
                "velocity": None,
                "rateLimit": None,
            },
        ]
    }
    # What it lists is what initialize takes, and what the award is worth.
    for action in (await envelope(await boards_client.get("/api/v1/actions")))["data"]["actions"]:
        resp = await boards_client.post(
            "/api/v1/actions/initialize",
            json={"actionType": action["type"], "actionId": f"try-{action['type']}"},
            headers=bearer("ann"),
        )
        assert (resp.status, (await envelope(resp))["data"]["expectedScore"]) == (200, action["score"])
