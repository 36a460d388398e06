"""The live page for a signed-in viewer, in headless Chromium: the "around me" panel shows the ranks
around the user of the token in the page's session storage (`scoreboard.token`, or handed over in
the URL fragment) and follows an award; a toast says who passed the viewer, once, also when it
happened while the socket was away; a refused token is forgotten; an anonymous viewer has no panel;
the link `run.py demo` prints signs the page in as a simulated player."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest

from app.api.keys import HUB
from app.errors import CLOSE_TRY_AGAIN_LATER

from .browsers import skip_without_chromium
from .conftest import Flow
from .live_client import token_for
from .real_servers import run_py

pytestmark = pytest.mark.browser

skip_without_chromium()

TOKEN_KEY = "scoreboard.token"
RADIUS = 3  # the page's around window (board.js AROUND_RADIUS)
SOCKETS = re.compile(r".*/ws/scoreboard.*")
# Every toast the page shows, in order, also after it has gone from the screen.
WATCH_TOASTS = """() => {
    window.toasted = [];
    new MutationObserver((changes) => {
        for (const change of changes) for (const node of change.addedNodes) window.toasted.push(node.textContent);
    }).observe(document.getElementById('toasts'), { childList: true });
}"""


def _base(client: Any) -> str:
    return f"http://{client.host}:{client.port}"


async def _seed(flow: Flow, users: int = 8) -> None:
    """u0 … u{users-1} with (users - i) quests each: u0 first, 100 points apart."""
    for i in range(users):
        for n in range(users - i):
            await flow.award(f"u{i}", f"q{n}")


async def _signed_in(browser: Any, client: Any, user: str) -> Any:
    """A page whose session storage holds `user`'s token before any script runs, once live."""
    page = await browser.new_page()
    await page.add_init_script(f"sessionStorage.setItem({TOKEN_KEY!r}, {token_for(user)!r})")
    await page.goto(_base(client) + "/")
    await page.wait_for_selector('#conn-state[data-state="live"]', timeout=5000)
    return page


async def _panel(page: Any) -> list[tuple[str, str, str, bool]]:
    """The panel's rows: (rank, user, score as shown, marked as the viewer's)."""
    rows: list[list[Any]] = await page.locator("#around-me tbody tr").evaluate_all(
        """rows => rows.map(r => [r.cells[0].textContent, r.dataset.userId, r.cells[2].textContent,
                                  r.getAttribute('aria-current') === 'true'])"""
    )
    return [(rank, user, score, mine) for rank, user, score, mine in rows]


async def _around(client: Any, user: str) -> list[tuple[str, str, str, bool]]:
    """What the panel should show: GET /around for the user, their own row marked."""
    resp = await client.get(f"/api/v1/boards/global/around/{user}", params={"radius": str(RADIUS)})
    entries = (await resp.json())["data"]["entries"]
    return [(str(e["rank"]), e["userId"], str(e["score"]), e["userId"] == user) for e in entries]


async def _panel_shows(page: Any, expected: list[tuple[str, str, str, bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (rows := await _panel(page)) != expected:
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.05)


async def test_the_panel_shows_the_viewers_window_and_follows_an_award(browser: Any, flow: Flow, client: Any) -> None:
    await _seed(flow)
    page = await _signed_in(browser, client, "u5")
    assert await page.locator("#around-me").is_visible()
    expected = await _around(client, "u5")
    assert [row[1] for row in expected] == ["u2", "u3", "u4", "u5", "u6", "u7"]  # ranks 3 to 8 of 8
    await _panel_shows(page, expected)
    assert await page.locator("#around-me .around-note").text_content() == "You are #6 of 8 · All time"

    # +500: level with u0 at 800, who got there first. The window moves up with the viewer.
    await flow.award("u5", "boss", "DEFEAT_BOSS")
    expected = await _around(client, "u5")
    assert [row[1] for row in expected] == ["u0", "u5", "u1", "u2", "u3"]
    await _panel_shows(page, expected)
    assert await page.locator("#around-me .around-note").text_content() == "You are #2 of 8 · All time"
    await page.locator('#board-body tr[data-user-id="u5"]').wait_for()  # the top 10 follows too

    # Another's award inside the window changes the ranks it spans, and the panel with them.
    await flow.award("u3", "boss", "DEFEAT_BOSS")
    await _panel_shows(page, await _around(client, "u5"))


async def test_the_panel_follows_by_polling_where_sockets_and_streams_are_refused(
    browser: Any, flow: Flow, client: Any
) -> None:
    await _seed(flow, users=4)
    page = await browser.new_page()
    await page.route_web_socket(SOCKETS, lambda ws: ws.close())
    await page.route("**/api/v1/boards/*/stream*", lambda route: route.abort())
    await page.add_init_script(f"sessionStorage.setItem({TOKEN_KEY!r}, {token_for('u3')!r})")
    await page.goto(_base(client) + "/")
    await page.wait_for_selector('#conn-state[data-state="polling"][data-transport="polling"]', timeout=10000)
    await _panel_shows(page, await _around(client, "u3"))
    await flow.award("u3", "boss", "DEFEAT_BOSS")  # 100 + 500: first
    expected = await _around(client, "u3")
    assert expected[0][:2] == ("1", "u3")
    await _panel_shows(page, expected)


async def _toasted(page: Any, count: int) -> list[str]:
    """The texts of the page's toasts, once there are `count`."""
    await page.wait_for_function(f"() => window.toasted.length >= {count}", timeout=10000)
    texts: list[str] = await page.evaluate("() => window.toasted")
    return texts


async def test_a_toast_says_who_passed_the_viewer(browser: Any, flow: Flow, client: Any) -> None:
    await _seed(flow)  # u0 800, u1 700, u2 600 … u7 100
    page = await _signed_in(browser, client, "u2")
    await page.evaluate(WATCH_TOASTS)
    await _panel_shows(page, await _around(client, "u2"))
    # u5: 300 + 500 = 800, level with u0 who got there first: rank 2, past u1, u2, u3 and u4.
    await flow.award("u5", "boss", "DEFEAT_BOSS")
    assert await _toasted(page, 1) == ["U5 passed you on global: you are #4 now (#3 before)"]
    assert await page.locator("#toasts .toast").count() == 1
    await _panel_shows(page, await _around(client, "u2"))


async def test_a_pass_while_the_socket_is_away_is_toasted_once(browser: Any, flow: Flow, client: Any) -> None:
    await _seed(flow)
    page = await _signed_in(browser, client, "u2")
    await page.evaluate(WATCH_TOASTS)
    await _panel_shows(page, await _around(client, "u2"))
    # Sockets refused for a while: the page's notices are polled (GET /users/me/notifications?after=).
    refused = True
    await page.route_web_socket(SOCKETS, lambda ws: ws.close() if refused else ws.connect_to_server())
    hub = client.app[HUB]
    hub.close_all(CLOSE_TRY_AGAIN_LATER, "test")
    await hub.finished()
    await page.wait_for_selector('#conn-state[data-transport="sse"]', timeout=5000)
    await flow.award("u5", "boss", "DEFEAT_BOSS")
    assert await _toasted(page, 1) == ["U5 passed you on global: you are #4 now (#3 before)"]

    # The socket again: it resubscribes after the last notice shown, so that one is not shown twice.
    refused = False
    await page.wait_for_selector('#conn-state[data-transport="websocket"]', timeout=30000)
    await flow.award("u6", "boss", "DEFEAT_BOSS")  # 200 + 500 = 700, level with u1: past u2 again
    assert await _toasted(page, 2) == [
        "U5 passed you on global: you are #4 now (#3 before)",
        "U6 passed you on global: you are #5 now (#4 before)",
    ]


async def test_the_panel_waits_for_a_viewer_not_on_the_board(browser: Any, flow: Flow, client: Any) -> None:
    await _seed(flow, users=2)
    page = await _signed_in(browser, client, "newcomer")
    note = page.locator("#around-me .around-note")
    await page.wait_for_function("() => document.querySelector('#around-me .around-note').textContent !== 'Loading…'")
    assert await note.text_content() == "You are not on this board yet"
    assert await _panel(page) == []
    await flow.award("newcomer", "first")
    await _panel_shows(page, await _around(client, "newcomer"))
    assert await note.text_content() == "You are #3 of 3 · All time"


async def test_a_token_in_the_fragment_is_kept_for_the_session_and_leaves_the_address_bar(
    browser: Any, flow: Flow, client: Any
) -> None:
    await _seed(flow, users=3)
    token = token_for("u1")
    page = await browser.new_page()
    await page.goto(f"{_base(client)}/?board=global#token={token}")
    await page.wait_for_selector('#conn-state[data-state="live"]', timeout=5000)
    assert await page.evaluate("() => location.href") == f"{_base(client)}/?board=global"
    assert await page.evaluate(f"() => sessionStorage.getItem({TOKEN_KEY!r})") == token
    await _panel_shows(page, await _around(client, "u1"))

    # The same session's next page needs no fragment.
    await page.goto(_base(client) + "/")
    await _panel_shows(page, await _around(client, "u1"))


async def test_an_anonymous_viewer_has_no_panel(browser: Any, flow: Flow, client: Any) -> None:
    await _seed(flow, users=2)
    page = await browser.new_page()
    await page.goto(_base(client) + "/")
    await page.wait_for_selector('#conn-state[data-state="live"]', timeout=5000)
    assert await page.locator("#around-me").is_hidden()


async def test_a_refused_token_is_forgotten_and_the_board_stays_live(browser: Any, flow: Flow, client: Any) -> None:
    await _seed(flow, users=2)
    page = await browser.new_page()
    await page.add_init_script(f"sessionStorage.setItem({TOKEN_KEY!r}, {token_for('u1', ttl=-60)!r})")  # expired
    await page.goto(_base(client) + "/")
    await page.wait_for_function(f"() => sessionStorage.getItem({TOKEN_KEY!r}) === null", timeout=5000)
    await page.wait_for_selector('#conn-state[data-state="live"][data-transport="websocket"]', timeout=10000)
    assert await page.locator("#around-me").is_hidden()
    await flow.award("u9", "late")
    await page.locator('#board-body tr[data-user-id="u9"]').wait_for(timeout=3000)


async def test_the_demos_link_signs_the_page_in_as_a_simulated_player(browser: Any, tmp_path: Path) -> None:
    with run_py({"SCOREBOARD_SQLITE_PATH": str(tmp_path / "demo.db")}, "demo", "--players", "4") as server:
        found = None
        deadline = time.monotonic() + 10
        while found is None:
            assert time.monotonic() < deadline, server.log_tail()
            found = re.search(rb"http://\S+/#token=\S+", server.log)
            await asyncio.sleep(0.05)
        assert found.group().decode().startswith(server.url + "/#token=")
        page = await browser.new_page()
        await page.goto(found.group().decode())
        assert await page.evaluate("() => location.hash") == ""
        # Ada plays like the others: once she is on the board, the panel shows her among her neighbours.
        mine = page.locator('#around-me tbody tr[data-user-id="demo-1"][aria-current="true"]')
        await mine.wait_for(timeout=20_000)
        assert await mine.locator(".name").text_content() == "Ada"
