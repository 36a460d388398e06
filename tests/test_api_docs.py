"""/api/docs in headless Chromium (Debian's package, driven by Playwright): Swagger UI from this
server's own files, under the pages' Content-Security-Policy, lists every route, and "Try it out"
reaches the server, with a user's bearer too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from app.api.routes import ENDPOINTS

from .browsers import skip_without_chromium
from .conftest import make_config
from .live_client import token_for

pytestmark = pytest.mark.browser

skip_without_chromium()


async def _open(browser: Any, base: str) -> tuple[Any, list[str]]:
    """The docs page, loaded, and the problems seen on the way: errors, refusals, requests elsewhere."""
    page = await browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type in ("error", "warning") else None)
    page.on("request", lambda r: None if r.url.startswith(base) else problems.append(f"left the server: {r.url}"))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    await page.goto(f"{base}/api/docs")
    await page.wait_for_selector(".opblock", timeout=15000)
    return page, problems


def _operation(page: Any, method: str, path: str) -> Any:
    return page.locator(f".opblock-{method.lower()}").filter(
        has=page.locator(f'.opblock-summary-path[data-path="{path}"]')
    )


async def _execute(page: Any, method: str, path: str) -> tuple[str, Any]:
    """Open an operation, "Try it out" with what it shows (its example body), Execute: the status
    and the body Swagger UI shows from the server."""
    operation = _operation(page, method, path)
    await operation.locator(".opblock-summary").click()
    await operation.locator(".try-out__btn").click()
    await operation.locator(".execute").click()
    answer = operation.locator(".live-responses-table tbody .response")
    await answer.wait_for(timeout=10000)
    status = (await answer.locator(".response-col_status").text_content()).strip()
    body = await answer.locator(".response-col_description pre.microlight").first.text_content()
    return status, json.loads(body)


async def test_swagger_ui_lists_every_route_and_tries_them_on_the_server(
    aiohttp_client: Any, tmp_path: Path, browser: Any
) -> None:
    client = await aiohttp_client(create_app(make_config(tmp_path / "db.sqlite")))
    base = f"http://{client.host}:{client.port}"
    page, problems = await _open(browser, base)

    shown = await page.locator(".opblock").evaluate_all(
        """blocks => blocks.map(b => [
            b.querySelector('.opblock-summary-method').textContent,
            b.querySelector('.opblock-summary-path').dataset.path,
        ])"""
    )
    assert sorted(map(tuple, shown)) == sorted((e.method, e.path) for e in ENDPOINTS)

    status, body = await _execute(page, "GET", "/api/v1/actions")
    assert status == "200" and [a["type"] for a in body["data"]["actions"]] == [
        "COMPLETE_QUEST",
        "DEFEAT_BOSS",
        "SLOW_PUZZLE",
    ]

    # A user's bearer through "Authorize", then the example request body as Swagger UI shows it.
    await page.locator(".auth-wrapper .authorize").click()
    bearer = page.locator(".modal-ux .auth-container").filter(has_text="bearer").first
    await bearer.locator("input").fill(token_for("ada", name="Ada"))
    await bearer.locator(".auth-btn-wrapper .authorize").click()
    await page.locator(".modal-ux .close-modal").click()
    status, body = await _execute(page, "POST", "/api/v1/actions/initialize")
    assert status == "200" and body["data"]["expectedScore"] == 100 and body["data"]["actionToken"]
    assert problems == []
