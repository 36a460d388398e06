"""The JavaScript client in headless Chromium, against a real `run.py` that is killed and started
again: the live page recovers by itself, with no reload, over the WebSocket; with WebSockets
blocked, over Server-Sent Events (an EventSource that served resumes with `Last-Event-ID`); with
event streams blocked too, by polling."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .browsers import skip_without_chromium
from .conftest import ACTION_SECRET, JWT_SECRET
from .live_client import token_for
from .real_servers import ServerProcess, run_py

pytestmark = pytest.mark.browser

skip_without_chromium()

# Every limit out of the way: the page polls, and the test awards, from one address.
CONFIG = """
[limits]
ip_requests_per_minute = 1000000
ws_handshakes_per_ip_per_minute = 1000000
[actions.COMPLETE_QUEST]
score = 100
"""
SOCKETS = re.compile(r".*/ws/scoreboard.*")
STREAMS = "**/api/v1/boards/*/stream*"
RECOVERY_TIMEOUT_MS = 60_000  # a few rounds of the client's backoff (full jitter, doubling from 0.5 s)


def _award(server: ServerProcess, user: str) -> None:
    auth = {"Authorization": f"Bearer {token_for(user)}"}
    status, body = server.request(
        "POST", "/api/v1/actions/initialize", {"actionType": "COMPLETE_QUEST", "actionId": "q1"}, auth
    )
    assert status == 200, body
    token = body["data"]["actionToken"]
    status, body = server.request("POST", "/api/v1/scoreboard/update", {"actionToken": token, "actionId": "q1"}, auth)
    assert status == 200, body


async def _restart(page: Any, server: ServerProcess, env: dict[str, str], transport: str) -> ServerProcess:
    """Kill the server (no goodbye to the page), start it again on its port, and wait until the page
    is live again over `transport`, by itself."""
    server.kill()
    await page.wait_for_selector('#conn-state:not([data-state="live"])', timeout=5000)
    server = run_py(env, port=server.port).start()
    state = "polling" if transport == "polling" else "live"
    await page.wait_for_selector(
        f'#conn-state[data-state="{state}"][data-transport="{transport}"]', timeout=RECOVERY_TIMEOUT_MS
    )
    return server


async def test_the_page_recovers_over_the_socket_then_event_streams_then_polls(browser: Any, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    env = {
        "SCOREBOARD_ENV": "test",
        "SCOREBOARD_CONFIG": str(config),
        "SCOREBOARD_SQLITE_PATH": str(tmp_path / "db.sqlite"),
        "SCOREBOARD_REDIS_URL": "",
        "SCOREBOARD_DATABASE_URL": "",
        "SCOREBOARD_JWT_SECRET": JWT_SECRET.decode(),
        "SCOREBOARD_ACTION_SECRET": ACTION_SECRET.decode(),
    }
    server = run_py(env).start()
    try:
        page = await browser.new_page()
        streams: list[Any] = []  # every event stream the page asked for
        page.on("request", lambda r: streams.append(r) if "/stream" in r.url else None)
        await page.goto(server.url + "/")
        await page.wait_for_selector('#conn-state[data-state="live"][data-transport="websocket"]', timeout=5000)
        await page.evaluate("() => { window.loadedOnce = true; }")  # gone if the page reloaded

        # 1. The WebSocket comes back.
        server = await _restart(page, server, env, "websocket")
        _award(server, "ana")
        await page.locator('#board-body tr[data-user-id="ana"]').wait_for(timeout=5000)

        # 2. A proxy that refuses WebSockets from now on: the board comes back over an event stream.
        await page.route_web_socket(SOCKETS, lambda ws: ws.close())
        server = await _restart(page, server, env, "sse")
        _award(server, "ben")
        await page.locator('#board-body tr[data-user-id="ben"]').wait_for(timeout=5000)

        # The stream that served reconnects by itself, naming the last event it saw: its snapshot
        # (1) and ben's award (2).
        asked = len(streams)
        server = await _restart(page, server, env, "sse")
        resumed = [(await request.all_headers()).get("last-event-id") for request in streams[asked:]]
        assert resumed and set(resumed) == {"2"}, resumed
        _award(server, "cyd")
        await page.locator('#board-body tr[data-user-id="cyd"]').wait_for(timeout=5000)

        # 3. Event streams refused too: the page polls.
        await page.route(STREAMS, lambda route: route.abort())
        server = await _restart(page, server, env, "polling")
        _award(server, "dee")
        await page.locator('#board-body tr[data-user-id="dee"]').wait_for(timeout=5000)

        rows = await page.locator("#board-body tr[data-user-id]").evaluate_all(
            "rows => rows.map(r => r.dataset.userId)"
        )
        assert sorted(rows) == ["ana", "ben", "cyd", "dee"]
        assert await page.evaluate("() => window.loadedOnce") is True
    finally:
        server.stop()
