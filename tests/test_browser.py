"""The live page in headless Chromium (Debian's package, driven by Playwright): awards appear
without a reload, names stay text, and the page reconnects by itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.api.keys import HUB
from app.errors import CLOSE_SERVICE_RESTART, CLOSE_TRY_AGAIN_LATER

from .browsers import skip_without_chromium
from .conftest import ACTION_SECRET, JWT_SECRET, Flow
from .live_client import token_for
from .real_servers import run_py

pytestmark = pytest.mark.browser

skip_without_chromium()


async def _open(browser: Any, client: Any) -> Any:
    page = await browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    page.dialogs = dialogs
    await page.goto(f"http://{client.host}:{client.port}/")
    await page.wait_for_selector('#conn-state[data-state="live"]', timeout=5000)
    return page


async def test_award_appears_without_reload(browser: Any, flow: Flow, client: Any) -> None:
    await flow.award("bob", "q0")
    page = await _open(browser, client)
    assert await page.locator('#board-body tr[data-user-id="bob"]').count() == 1
    other = await _open(browser, client)  # a second tab must agree

    hostile = '<img src=x onerror=alert("xss")>'
    resp = await client.post(
        "/api/v1/actions/initialize",
        json={"actionType": "DEFEAT_BOSS", "actionId": "b1"},
        headers={"Authorization": f"Bearer {token_for('eve', name=hostile)}"},
    )
    token = (await resp.json())["data"]["actionToken"]
    resp = await client.post(
        "/api/v1/scoreboard/update",
        json={"actionToken": token, "actionId": "b1"},
        headers={"Authorization": f"Bearer {token_for('eve', name=hostile)}"},
    )
    assert resp.status == 200

    for tab in (page, other):
        row = tab.locator('#board-body tr[data-user-id="eve"]')
        await row.wait_for(timeout=1000)  # within one second, no reload
        assert await row.locator(".name").text_content() == hostile
        assert await row.locator(".col-score").text_content() == "500"
        assert await tab.locator("#board-body img").count() == 0
        ranks = await tab.locator("#board-body tr").evaluate_all("rows => rows.map(r => r.dataset.userId)")
        assert ranks == ["eve", "bob"]
    assert page.dialogs == [] and other.dialogs == []


async def _watch_states(page: Any) -> None:
    """Record every state the indicator passes through (the reconnect may be too quick to poll
    for) in `window.seenStates`, count the page's polls of the top in `window.polls` and the event
    streams it opens in `window.streams`."""
    await page.evaluate(
        """() => {
            const el = document.getElementById('conn-state');
            window.seenStates = [];
            new MutationObserver(() => window.seenStates.push(el.dataset.state))
                .observe(el, {attributes: true, attributeFilter: ['data-state']});
            window.polls = 0;
            const fetch = window.fetch;
            window.fetch = (url, ...rest) => {
                if (String(url).includes('/top')) window.polls += 1;
                return fetch(url, ...rest);
            };
            window.streams = 0;
            window.EventSource = class extends window.EventSource {
                constructor(url, init) {
                    super(url, init);
                    if (String(url).includes('/stream')) window.streams += 1;
                }
            };
        }"""
    )


async def test_page_reconnects_after_sockets_drop(browser: Any, flow: Flow, client: Any) -> None:
    page = await _open(browser, client)
    await _watch_states(page)
    # Not a restart: the page backs off, its board on the event stream meanwhile.
    client.app[HUB].close_all(CLOSE_TRY_AGAIN_LATER, "test")
    await client.app[HUB].finished()
    await page.wait_for_function("() => window.seenStates.some(s => s !== 'live')", timeout=5000)
    await page.wait_for_selector('#conn-state[data-state="live"][data-transport="websocket"]', timeout=10000)
    assert await page.evaluate("() => window.streams") > 0
    await flow.award("carol", "q1")
    await page.locator('#board-body tr[data-user-id="carol"]').wait_for(timeout=1000)


async def test_page_reconnects_at_once_after_a_restart_close(browser: Any, flow: Flow, client: Any) -> None:
    """1012 (a server draining): back within the restart jitter (1 s), with no fallback meanwhile."""
    page = await _open(browser, client)
    await _watch_states(page)
    client.app[HUB].close_all(CLOSE_SERVICE_RESTART, "test")  # as a draining process does
    await client.app[HUB].finished()
    await page.wait_for_function("() => window.seenStates.some(s => s !== 'live')", timeout=5000)
    await page.wait_for_selector('#conn-state[data-state="live"]', timeout=2000)
    assert await page.evaluate("() => [window.polls, window.streams]") == [0, 0]
    assert "polling" not in await page.evaluate("() => window.seenStates")
    await flow.award("carol", "q1")
    await page.locator('#board-body tr[data-user-id="carol"]').wait_for(timeout=1000)


async def test_page_reconnects_after_server_restart(browser: Any, tmp_path: Path) -> None:
    env = {
        "SCOREBOARD_SQLITE_PATH": str(tmp_path / "db.sqlite"),
        "SCOREBOARD_JWT_SECRET": JWT_SECRET.decode(),
        "SCOREBOARD_ACTION_SECRET": ACTION_SECRET.decode(),
    }
    server = run_py(env).start()
    try:
        page = await browser.new_page()
        await page.goto(server.url + "/")
        await page.wait_for_selector('#conn-state[data-state="live"]', timeout=5000)
        server.kill()  # kill -9: no goodbye to the page
        await page.wait_for_selector('#conn-state:not([data-state="live"])', timeout=5000)
        server = run_py(env, port=server.port).start()
        await page.wait_for_selector('#conn-state[data-state="live"]', timeout=15000)  # by itself, no reload
        auth = {"Authorization": f"Bearer {token_for('dora')}"}
        status, body = server.request(
            "POST", "/api/v1/actions/initialize", {"actionType": "COMPLETE_QUEST", "actionId": "q1"}, auth
        )
        status, _ = server.request(
            "POST", "/api/v1/scoreboard/update", {"actionToken": body["data"]["actionToken"], "actionId": "q1"}, auth
        )
        assert status == 200
        await page.locator('#board-body tr[data-user-id="dora"]').wait_for(timeout=1000)
    finally:
        server.stop()
