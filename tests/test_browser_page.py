"""The live page explains itself to a first-time viewer, in headless Chromium: the game's name, how
many players the period shown has, why equal scores are in their order, when the board last changed
(with the date when that was not the viewer's today, in the viewer's locale) and where the API is
documented."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.api.keys import HUB
from app.api.page import TIE_FIRST, TIE_LEGENDS, TIE_SUBSCORE, TIE_TITLES
from app.clock import iso

from .boards.scene import NEXT_MONDAY_MS, WEDNESDAY_MS, AppClient, Boards, Clock, app_with_clock, boards_config
from .browsers import skip_without_chromium
from .conftest import Flow

pytestmark = pytest.mark.browser

skip_without_chromium()

GAME = '<img src=x onerror=alert("pwned")> Ünïcødé 🏆 ゲーム & Co'


@pytest.fixture
def clock() -> Clock:
    """The app's clock: Wednesday of ISO week 2026-W49, noon UTC."""
    return Clock()


@pytest.fixture
async def client(aiohttp_client: Any, db_path: Path, storage: dict[str, Any], clock: Clock) -> AppClient:
    """The boards of tests/boards/scene.py in a game with a hostile, non-ASCII name."""
    app_client: AppClient = await aiohttp_client(
        app_with_clock(boards_config(db_path, storage, server={"title": GAME}), clock)
    )
    return app_client


async def _open(browser: Any, client: AppClient, path: str = "/", **context: Any) -> Any:
    """A page of `path` in a browser context of its own (`locale`, `timezone_id` …) once its board
    is live; the dialogs it opened in `page.dialogs`; `now` (a datetime) fixes the page's clock."""
    now = context.pop("now", None)
    page = await (await browser.new_context(**context)).new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    page.dialogs = dialogs
    if now is not None:
        await page.clock.set_fixed_time(now)  # Date only: the page's timers keep running
    await page.goto(f"http://{client.host}:{client.port}{path}")
    await page.wait_for_selector('#conn-state[data-state="live"]', timeout=5000)
    return page


async def _until(check: Callable[[], Any], what: str, timeout: float = 5.0) -> None:
    """Wait until the awaitable `check()` gives a true value."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def _ties(page: Any) -> list[tuple[str, str | None]]:
    """The rows top to bottom: (user, the title of their tie mark, None when it is not shown)."""
    rows: list[list[Any]] = await page.locator("#board-body tr[data-user-id]").evaluate_all(
        """rows => rows.map(r => {
            const tie = r.querySelector('.tie');
            return [r.dataset.userId, tie && !tie.hidden && tie.checkVisibility() ? tie.title : null];
        })"""
    )
    return [(user, title) for user, title in rows]


async def _legend(page: Any) -> str | None:
    """The line under the table that explains the ties, None when it is not shown."""
    legend = page.locator("#tie-legend")
    return await page.locator("#tie-legend-text").text_content() if await legend.is_visible() else None


async def _shows(page: Any, ties: list[tuple[str, str | None]], legend: str | None) -> bool:
    return await _ties(page) == ties and await _legend(page) == legend


async def test_the_page_names_the_game_and_links_the_api_docs(browser: Any, flow: Flow, client: AppClient) -> None:
    await flow.award("alice", "q1")
    page = await _open(browser, client)
    assert await page.title() == f"{GAME} — All time"
    assert await page.locator("#game-title").text_content() == GAME
    assert await page.get_by_role("heading", level=1).text_content() == f"{GAME} — All time"
    assert await page.locator("img").count() == 0  # the name is text, never markup

    # Another board's tab: the game's name stays in the browser tab's title.
    await page.get_by_role("link", name="This week").click()
    await page.wait_for_url("**/?board=weekly")
    assert await page.title() == f"{GAME} — This week"
    assert await page.locator("#game-title").text_content() == GAME

    docs = page.get_by_role("link", name="API docs")
    assert await docs.get_attribute("href") == "/api/docs"
    await docs.click()
    await page.wait_for_url("**/api/docs")
    assert await page.title() == "Scoreboard API"
    assert page.dialogs == []


async def test_ties_are_explained_only_while_scores_are_equal(browser: Any, flow: Flow, client: AppClient) -> None:
    boards = Boards(client, flow.bearer)
    await boards.write("high", {"userId": "ann", "score": 50}, key="h1")
    await boards.write("high", {"userId": "ben", "score": 50}, key="h2")  # the same score, reached later
    await boards.write("high", {"userId": "cy", "score": 80}, key="h3")
    page = await _open(browser, client, "/?board=high")
    first = TIE_TITLES[TIE_FIRST]
    assert await _ties(page) == [("cy", None), ("ann", first), ("ben", first)]
    assert await _legend(page) == TIE_LEGENDS[TIE_FIRST]
    assert await page.locator('#board-body tr[data-user-id="ann"] .tie').text_content() == "tie"  # text, not colour

    # Live: ben's better score ends the tie, and the page stops explaining one.
    await boards.write("high", {"userId": "ben", "score": 60}, key="h4")
    await _until(lambda: _shows(page, [("cy", None), ("ben", None), ("ann", None)], None), "no tie left")

    # A newcomer with ben's score and a subscore: ahead of him, by the game's tie-break.
    await boards.write("high", {"userId": "dee", "score": 60, "subscore": 2}, key="h5")
    subscore = TIE_TITLES[TIE_SUBSCORE]
    expected = [("cy", None), ("dee", subscore), ("ben", subscore), ("ann", None)]
    await _until(lambda: _shows(page, expected, TIE_LEGENDS[TIE_SUBSCORE]), "a tie broken by the subscore")

    # The page's rules and the server's agree.
    reasons = await page.evaluate(
        """async () => {
            const f = await import('/static/format.js');
            const tops = [
                [{score: 9}, {score: 5}, {score: 5}, {score: 3}],
                [{score: 5}, {score: 5, subscore: 0}, {score: 4, subscore: 1}, {score: 4, subscore: 2}],
                [{score: 7}, {score: 5}, {score: 3}],
            ];
            return tops.map((top) => { const r = f.tieReasons(top); return [r, f.tieLegend(r)]; });
        }"""
    )
    assert reasons == [
        [[None, TIE_FIRST, TIE_FIRST, None], TIE_LEGENDS[TIE_FIRST]],
        [[TIE_FIRST, TIE_FIRST, TIE_SUBSCORE, TIE_SUBSCORE], TIE_LEGENDS[TIE_SUBSCORE]],
        [[None, None, None], ""],
    ]
    assert page.dialogs == []


async def test_the_page_counts_the_players_of_the_period_shown(
    browser: Any, flow: Flow, client: AppClient, clock: Clock
) -> None:
    boards = Boards(client, flow.bearer)
    for i in range(10):
        await boards.write("high", {"userId": f"p{i}", "score": 100 + i}, key=f"p{i}")
    page = await _open(browser, client, "/?board=high")
    count = page.locator("#player-count")
    assert await count.text_content() == "10 players"
    top = await page.locator("#board-body tr[data-user-id]").evaluate_all("rows => rows.map(r => r.dataset.userId)")

    # A newcomer below the top 10 changes only the count: it still reaches the page, live.
    await boards.write("high", {"userId": "late", "score": 1}, key="late")
    await _until(lambda: _text_is(count, "11 players"), "the newcomer counted")
    assert (
        await page.locator("#board-body tr[data-user-id]").evaluate_all("rows => rows.map(r => r.dataset.userId)")
        == top
    )

    # A weekly board: its week's players, the new week's none, and a finished week's its own.
    await flow.award("alice", "q1")
    await flow.award("bob", "w1", "WEEKLY_ONLY")
    await page.get_by_role("link", name="This week").click()
    await _until(lambda: _text_is(count, "2 players"), "the week's players")
    clock.now_ms = NEXT_MONDAY_MS
    client.app[HUB].resync()  # the boundary timer runs on the real clock: wake the waves now
    await _until(lambda: _text_is(count, "0 players"), "the new week is empty")
    await _until(lambda: _options(page, 2), "the ended week listed")
    await page.locator("#period-select").select_option("2026-W49")
    await _until(lambda: _text_is(count, "2 players"), "the finished week's players")
    await flow.award("carol", "q2")
    await page.locator("#period-select").select_option("current")
    await _until(lambda: _text_is(count, "1 player"), "back to the current week")


async def _text_is(locator: Any, text: str) -> bool:
    return bool(await locator.text_content() == text)


async def _options(page: Any, count: int) -> bool:
    return bool(await page.locator("#period-select option").count() == count)


def _viewer(locale: str, timezone_id: str, year: int, month: int, day: int, hour: int) -> dict[str, Any]:
    """A browser context of a viewer in `locale` and `timezone_id` whose clock says that hour (UTC)."""
    return {"locale": locale, "timezone_id": timezone_id, "now": datetime(year, month, day, hour, tzinfo=UTC)}


# The awards of the test below happen on the app's clock: Wednesday 2026-12-02, 12:00 UTC.
@pytest.mark.parametrize(
    ("viewer", "shown"),
    [
        (_viewer("en-GB", "UTC", 2026, 12, 2, 18), "12:00:00"),
        (_viewer("en-GB", "UTC", 2026, 12, 5, 9), "2 Dec 2026, 12:00:00"),
        (_viewer("de-DE", "Europe/Berlin", 2026, 12, 2, 18), "13:00:00"),
        (_viewer("de-DE", "UTC", 2027, 1, 2, 9), "02.12.2026, 12:00:00"),
        # The viewer's day, not UTC's: noon UTC is 06:00 of the 2nd in Chicago, where the 3rd has
        # not begun at 03:00 UTC; and 21:00 of the 2nd in Tokyo, where it is the 3rd at 16:00 UTC.
        (_viewer("en-GB", "America/Chicago", 2026, 12, 3, 3), "06:00:00"),
        (_viewer("en-GB", "Asia/Tokyo", 2026, 12, 2, 16), "2 Dec 2026, 21:00:00"),
    ],
)
async def test_updated_shows_the_date_when_it_was_not_today(
    browser: Any, flow: Flow, client: AppClient, viewer: dict[str, Any], shown: str
) -> None:
    await flow.award("alice", "q1")
    page = await _open(browser, client, **viewer)
    updated = page.locator("#updated-at")
    await _until(lambda: _text_is(updated, shown), f"Updated {shown}")
    assert await updated.get_attribute("datetime") == iso(WEDNESDAY_MS)
    # A live change (still on the 2nd, the app's clock) is shown the same way.
    await flow.award("bob", "q2", "DEFEAT_BOSS")
    await page.locator('#board-body tr[data-user-id="bob"]').wait_for(timeout=3000)
    assert await updated.text_content() == shown
