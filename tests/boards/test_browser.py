"""The page of many boards in headless Chromium: a tab per board (boards made or retired at run
time too), `?board=` in the URL, live updates of the shown board only, times on a `duration_ms`
board, the end of a period, and the period selector's frozen tops, older kept periods included
(also in a server process whose database holds past weeks)."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.api.keys import HUB
from app.api.page import duration_text

from ..browsers import skip_without_chromium
from ..conftest import ACTION_SECRET, JWT_SECRET, Flow
from ..live_client import settled, token_for
from ..real_servers import run_py
from .scene import NEXT_MONDAY_MS, RACER_KEY, AppClient, Boards, Clock, sha

pytestmark = pytest.mark.browser

skip_without_chromium()

TABS = [
    ("global", "All time"),
    ("weekly", "This week"),
    ("daily", "daily"),
    ("trial", "Time trial"),
    ("high", "high"),
    ("latest", "latest"),
]


async def _open(browser: Any, base: str, path: str = "/") -> Any:
    """A page of `base` + `path`, once its board is live; the dialogs it opened in `page.dialogs`."""
    page = await browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    page.dialogs = dialogs
    await page.goto(base + path)
    await page.wait_for_selector('#conn-state[data-state="live"]', timeout=5000)
    return page


def _base(client: AppClient) -> str:
    return f"http://{client.host}:{client.port}"


async def _rows(page: Any) -> list[tuple[str, str]]:
    """The table's (user, score as shown), top to bottom."""
    rows: list[list[str]] = await page.locator("#board-body tr[data-user-id]").evaluate_all(
        "rows => rows.map(r => [r.dataset.userId, r.querySelector('.col-score').textContent])"
    )
    return [(user, score) for user, score in rows]


async def _wait_rows(page: Any, expected: list[tuple[str, str]], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while (rows := await _rows(page)) != expected:
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.05)


async def _options(page: Any) -> list[tuple[str, str]]:
    options: list[list[str]] = await page.locator("#period-select option").evaluate_all(
        "options => options.map(o => [o.value, o.textContent])"
    )
    return [(value, text) for value, text in options]


async def _until(check: Callable[[], Any], what: str, timeout: float = 3.0) -> None:
    """Wait until `check()` (a bool, or an awaitable of one) holds."""
    deadline = time.monotonic() + timeout
    while not await _value(check()):
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_tabs_switch_the_board_and_the_url(browser: Any, flow: Flow, client: AppClient) -> None:
    await flow.award("alice", "q1")  # global, weekly and daily
    page = await _open(browser, _base(client))
    links = await page.locator("nav[aria-label=Boards] a").evaluate_all(
        "links => links.map(a => [a.getAttribute('href'), a.textContent])"
    )
    assert links == [[f"/?board={board}", title] for board, title in TABS]
    assert await page.locator('#board-tabs a[aria-current="page"]').text_content() == "All time"
    await _wait_rows(page, [("alice", "100")])

    await page.get_by_role("link", name="This week").click()
    await page.wait_for_url("**/?board=weekly")
    assert await page.locator('#board-tabs a[aria-current="page"]').text_content() == "This week"
    assert await page.locator("h1").text_content() == "Scoreboard — This week"  # the game's name, then the board's
    assert await page.title() == "Scoreboard — This week"
    await _wait_rows(page, [("alice", "100")])
    hub = client.app[HUB]
    await _until(lambda: [b for b, w in hub.waves.items() if w.subscribers] == ["weekly"], "global left")

    # An award on this board only appears within a few seconds, without a reload.
    await flow.award("bob", "w1", "WEEKLY_ONLY")
    await _wait_rows(page, [("alice", "100"), ("bob", "7")])
    badge = page.locator('#board-body tr[data-user-id="bob"] .change')
    assert await badge.text_content() == "+7" and await badge.is_visible()

    # Back in the browser's history: the board of the URL before.
    await page.go_back()
    await page.wait_for_function("() => !location.search.includes('weekly')")
    assert await page.locator('#board-tabs a[aria-current="page"]').text_content() == "All time"
    await _wait_rows(page, [("alice", "100")])
    await _until(lambda: [b for b, w in hub.waves.items() if w.subscribers] == ["global"], "weekly left")
    await flow.award("carol", "q2", "DEFEAT_BOSS")  # DEFEAT_BOSS counts on the default board only
    await _wait_rows(page, [("carol", "500"), ("alice", "100")])
    assert page.dialogs == []


async def test_a_board_of_times_shows_times(browser: Any, flow: Flow, client: AppClient) -> None:
    boards = Boards(client, flow.bearer)
    await boards.write("trial", {"userId": "ann", "score": 61234}, key="t1")
    await boards.write("trial", {"userId": "ben", "score": 3_723_004}, key="t2")

    page = await _open(browser, _base(client), "/?board=trial")
    assert await _rows(page) == [("ann", "1:01.234"), ("ben", "1:02:03.004")]  # as the server rendered them
    assert await page.locator("#score-head").text_content() == "Time"

    await boards.write("trial", {"userId": "cy", "score": 59_999}, key="t3")
    await _wait_rows(page, [("cy", "0:59.999"), ("ann", "1:01.234"), ("ben", "1:02:03.004")])
    assert await page.locator('#board-body tr[data-user-id="cy"] .change').text_content() == "new"
    await boards.write("trial", {"userId": "ben", "score": 60_000}, key="t4")  # best of: a better time
    await _wait_rows(page, [("cy", "0:59.999"), ("ben", "1:00.000"), ("ann", "1:01.234")])
    badge = page.locator('#board-body tr[data-user-id="ben"] .change')
    assert await badge.text_content() == "-1:01:03.004"  # the time it saved
    assert "down" not in (await badge.get_attribute("class") or "")  # faster is better

    # Another board's tab: numbers again; and back: the live snapshot in times.
    await page.get_by_role("link", name="All time").click()
    await page.wait_for_url("**/?board=global")
    assert await page.locator("#score-head").text_content() == "Score"
    await page.get_by_role("link", name="Time trial").click()
    await _wait_rows(page, [("cy", "0:59.999"), ("ben", "1:00.000"), ("ann", "1:01.234")])

    # The page's formatter and the server's agree.
    values = [0, 1, 999, 1000, 59_999, 60_000, 61_234, 3_599_999, 3_600_000, 3_723_004, 360_000_000, -61_234]
    shown = await page.evaluate(
        "async (values) => { const f = await import('/static/format.js'); return values.map(f.durationText); }", values
    )
    assert shown == [duration_text(v) for v in values]
    assert duration_text(61_234) == "1:01.234" and duration_text(3_723_004) == "1:02:03.004"


async def test_period_end_and_the_period_selector(browser: Any, flow: Flow, client: AppClient, clock: Clock) -> None:
    clock.now_ms = NEXT_MONDAY_MS - 60_000  # the last minute of week 2026-W49
    await flow.award("alice", "q1")
    await flow.award("bob", "w1", "WEEKLY_ONLY")
    page = await _open(browser, _base(client), "/?board=weekly")
    assert await _options(page) == [("current", "Current · Week 2026-W49")]
    assert await page.locator("#period-select").is_disabled()  # nothing else to choose yet
    assert await page.get_by_label("Period").count() == 1

    clock.now_ms = NEXT_MONDAY_MS
    client.app[HUB].resync()  # the boundary timer runs on the real clock: wake the waves now
    note = page.locator("#period-note")
    await note.wait_for(state="visible", timeout=3000)
    assert await note.text_content() == "Week 2026-W49 ended"
    await page.locator("#board-body tr.empty").wait_for(timeout=3000)
    assert await page.locator("#board-body tr.empty").text_content() == "No scores yet"
    await _until(lambda: _options_are(page, 2), "the ended week listed")
    assert await _options(page) == [("current", "Current · Week 2026-W50"), ("2026-W49", "Previous · Week 2026-W49")]

    # A finished period: its frozen top, and no live updates meanwhile.
    await page.locator("#period-select").select_option("2026-W49")
    await _wait_rows(page, [("alice", "100"), ("bob", "7")])
    await page.wait_for_selector('#conn-state[data-state="paused"]', timeout=2000)
    assert await note.is_hidden()
    await flow.award("carol", "q2")
    await settled(client)
    await asyncio.sleep(0.3)
    assert await _rows(page) == [("alice", "100"), ("bob", "7")]

    # Current again: live, with what happened meanwhile.
    await page.locator("#period-select").select_option("current")
    await _wait_rows(page, [("carol", "100")])
    await page.wait_for_selector('#conn-state[data-state="live"]', timeout=2000)
    await flow.award("dora", "w2", "WEEKLY_ONLY")
    await _wait_rows(page, [("carol", "100"), ("dora", "7")])


async def test_an_older_kept_period_is_in_the_selector(
    browser: Any, flow: Flow, client: AppClient, clock: Clock
) -> None:
    # weekly keeps 2 periods: two weeks back is still readable, three weeks back is not.
    for weeks_back, user in ((3, "gone"), (2, "cy"), (1, "ann")):
        clock.now_ms = NEXT_MONDAY_MS - weeks_back * WEEK_MS + 3_600_000
        await flow.award(user, f"w{weeks_back}", "WEEKLY_ONLY")
    clock.now_ms = NEXT_MONDAY_MS + 3_600_000
    page = await _open(browser, _base(client), "/?board=weekly")
    await _until(lambda: _options_are(page, 3), "the kept weeks listed")
    assert await _options(page) == [
        ("current", "Current · Week 2026-W50"),
        ("2026-W49", "Previous · Week 2026-W49"),
        ("2026-W48", "Week 2026-W48"),
    ]
    select = page.locator("#period-select")
    await select.select_option("2026-W48")
    await _wait_rows(page, [("cy", "7")])
    await select.select_option("2026-W49")
    await _wait_rows(page, [("ann", "7")])
    assert page.dialogs == []


async def test_boards_made_and_retired_at_run_time_come_and_go_as_tabs(
    browser: Any, client: AppClient, operator: dict[str, str]
) -> None:
    page = await _open(browser, _base(client))
    assert await _tabs(page) == TABS
    before = await (await client.get("/")).text()
    made = await client.post("/api/v1/admin/boards", json={"id": "season-1", "title": "Season 1"}, headers=operator)
    assert made.status == 201, await made.text()
    await page.reload()
    await page.wait_for_selector('#conn-state[data-state="live"]', timeout=5000)
    assert await _tabs(page) == [*TABS, SEASON]
    await page.get_by_role("link", name="Season 1").click()
    await page.wait_for_url("**/?board=season-1")
    await page.locator("#board-body tr.empty").wait_for(timeout=3000)
    # A page a cache kept from before the change: its tabs follow GET /boards once it runs.
    await _until(lambda: _tabs_follow(browser, client, before, [*TABS, SEASON]), "the made board's tab added")

    with_season = await (await client.get("/")).text()
    retired = await client.delete("/api/v1/admin/boards/season-1", headers=operator)
    assert retired.status == 200, await retired.text()
    await page.goto(_base(client) + "/")
    await page.wait_for_selector('#conn-state[data-state="live"]', timeout=5000)
    assert await _tabs(page) == TABS
    await _until(lambda: _tabs_follow(browser, client, with_season, TABS), "the retired board's tab taken away")
    assert page.dialogs == []


SEASON = ("season-1", "Season 1")
WEEK_MS = 7 * 86_400_000


async def _tabs_follow(browser: Any, client: AppClient, html: str, tabs: list[tuple[str, str]]) -> bool:
    """Whether a page served as `html` (an earlier render) shows these tabs once its script ran."""
    page = await browser.new_page()
    try:
        await page.route(f"{_base(client)}/", lambda route: route.fulfill(body=html, content_type="text/html"))
        await page.goto(_base(client) + "/")
        await page.wait_for_selector('#conn-state[data-state="live"]', timeout=5000)
        return await _tabs(page) == tabs
    finally:
        await page.close()


async def _tabs(page: Any) -> list[tuple[str, str]]:
    """The board tabs: (board id, title) in order."""
    links: list[list[str]] = await page.locator("#board-tabs a[data-board]").evaluate_all(
        "links => links.map(a => [a.dataset.board, a.textContent])"
    )
    return [(board, title) for board, title in links]


async def _value(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


async def _options_are(page: Any, count: int) -> bool:
    return len(await _options(page)) == count


async def test_a_board_the_page_cannot_show_shows_the_default_board(
    browser: Any, flow: Flow, client: AppClient
) -> None:
    await flow.award("alice", "q1")
    page = await _open(browser, _base(client), "/?board=%3Cscript%3Ealert(1)%3C/script%3E")
    assert await page.locator("#notice").text_content() == "There is no board with that id; showing All time."
    assert await page.locator('#board-tabs a[aria-current="page"]').text_content() == "All time"
    assert await _rows(page) == [("alice", "100")]
    await page.get_by_role("link", name="Time trial").click()
    await page.wait_for_url("**/?board=trial")
    assert await page.locator("#notice").count() == 0
    await page.locator("#board-body tr.empty").wait_for()
    assert page.dialogs == []


def _week(now: datetime, weeks_back: int) -> str:
    year, week, _ = (now - timedelta(weeks=weeks_back)).isocalendar()
    return f"{year}-W{week:02d}"


REAL_CONFIG = """
[server]
read_cache_seconds = 0

[boards.global]
title = "All time"

[boards.weekly]
title = "This week"
reset = "weekly"
keep_periods = 2

[boards.trial]
title = "Time trial"
order = "asc"
operator = "best"
format = "duration_ms"

[services.racer]
key_sha256 = "{racer}"

[actions.COMPLETE_QUEST]
score = 100
min_seconds = 0
boards = ["global", "weekly"]
"""


def _seed(db: Path, entries: list[tuple[str, str, str, str, int]]) -> None:
    """Write entries of (board, period, user, username, score) as the store keeps them: a users row,
    and each entry with the board_history row whose id is its seq."""
    now = int(time.time() * 1000)
    with sqlite3.connect(db) as conn:
        for board, period, user, username, score in entries:
            conn.execute(
                "INSERT OR IGNORE INTO users (id, username, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (user, username, now, now),
            )
            seq = conn.execute(
                "INSERT INTO board_history (board, period, user_id, service, value, new_score, created_at)"
                " VALUES (?, ?, ?, 'racer', ?, ?, ?)",
                (board, period, user, score, score, now),
            ).lastrowid
            conn.execute(
                "INSERT INTO board_entries (board, period, user_id, score, seq, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (board, period, user, score, seq, now),
            )


async def test_real_server_past_weeks_and_a_trusted_write(browser: Any, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(REAL_CONFIG.replace("{racer}", sha(RACER_KEY)))
    db = tmp_path / "db.sqlite"
    env = {
        "SCOREBOARD_ENV": "test",
        "SCOREBOARD_CONFIG": str(config),
        "SCOREBOARD_SQLITE_PATH": str(db),
        "SCOREBOARD_REDIS_URL": "",
        "SCOREBOARD_DATABASE_URL": "",
        "SCOREBOARD_JWT_SECRET": JWT_SECRET.decode(),
        "SCOREBOARD_ACTION_SECRET": ACTION_SECRET.decode(),
    }
    run_py(env).start().stop()  # makes the schema
    now = datetime.now(UTC)
    last, before = _week(now, 1), _week(now, 2)
    _seed(
        db,
        [
            ("weekly", last, "ann", "Ann <b>", 300),
            ("weekly", last, "ben", "Ben", 200),
            ("weekly", before, "cy", "Cy", 50),
        ],
    )
    server = run_py(env).start()
    try:
        page = await _open(browser, server.url, "/?board=weekly")
        assert await page.locator("#board-body tr.empty").text_content() == "No scores yet"
        select = page.locator("#period-select")
        await _until(lambda: _options_are(page, 3), "the past weeks listed")
        assert await _options(page) == [
            ("current", f"Current · Week {_week(now, 0)}"),
            (last, f"Previous · Week {last}"),
            (before, f"Week {before}"),
        ]
        await select.select_option(last)
        await _wait_rows(page, [("ann", "300"), ("ben", "200")])
        assert await page.locator('#board-body tr[data-user-id="ann"] .name').text_content() == "Ann <b>"
        assert await page.locator("#board-body b").count() == 0
        await select.select_option(before)
        await _wait_rows(page, [("cy", "50")])

        # The award of a user counts live on this week's board once "current" is chosen again.
        await select.select_option("current")
        await page.wait_for_selector('#conn-state[data-state="live"]', timeout=2000)
        auth = {"Authorization": f"Bearer {token_for('dora')}"}
        status, body = server.request(
            "POST", "/api/v1/actions/initialize", {"actionType": "COMPLETE_QUEST", "actionId": "q1"}, auth
        )
        assert status == 200, body
        status, body = server.request(
            "POST", "/api/v1/scoreboard/update", {"actionToken": body["data"]["actionToken"], "actionId": "q1"}, auth
        )
        assert status == 200, body
        await _wait_rows(page, [("dora", "100")])

        # A trusted server's time on the trial board, shown as a time on its tab.
        await page.get_by_role("link", name="Time trial").click()
        await page.wait_for_url("**/?board=trial")
        racer = {"Authorization": f"Bearer {RACER_KEY}", "Idempotency-Key": "run-1"}
        status, body = server.request("POST", "/api/v1/boards/trial/scores", {"userId": "eve", "score": 83_456}, racer)
        assert status == 200, body
        await _wait_rows(page, [("eve", "1:23.456")])
        assert page.dialogs == []
    finally:
        server.stop()
