"""The operator page in headless Chromium, in every storage set-up: an operator signs in with an admin
JWT, sees the boards and the held awards, approves one (it lands on the live page's board) and
rejects another, each form saying what it did, then signs out; a player's JWT is refused. The page
runs under the live page's Content-Security-Policy without a single violation, and the browser keeps
the JWT in a cookie that scripts cannot read and only /admin gets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from app.api.admin_session import COOKIE
from app.api.edge import CSP
from app.auth import UserAuth

from .boards.scene import ACTIONS, AppClient, Clock, app_with_clock, boards_config
from .browsers import skip_without_chromium
from .conftest import JWT_SECRET, Flow, envelope

pytestmark = pytest.mark.browser

skip_without_chromium()

# Every award of it is held for an operator.
CHEST = {"score": 10, "boards": ["global", "weekly"], "hold_over_per_hour": 0}
AUTH = UserAuth(JWT_SECRET)


@pytest.fixture
async def client(aiohttp_client: Any, db_path: Path, storage: dict[str, Any]) -> AppClient:
    """The boards of tests/boards/scene.py, with OPEN_CHEST, whose every award is held."""
    config = boards_config(db_path, storage, actions={**ACTIONS, "OPEN_CHEST": CHEST})
    app_client: AppClient = await aiohttp_client(app_with_clock(config, Clock(int(time.time() * 1000))))
    return app_client


async def _held(flow: Flow, user: str, action_id: str) -> int:
    token = await flow.token(user, action_id, "OPEN_CHEST")
    body = await envelope(await flow.submit(token, user, action_id))
    held_id: int = body["data"]["id"]
    return held_id


async def _open(browser: Any, base: str) -> tuple[Any, Any, list[str]]:
    """A browser context of its own, a page of the operator page's sign-in, and what went wrong on
    the way (console errors, among them any Content-Security-Policy violation; failed requests)."""
    context = await browser.new_context()
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    response = await page.goto(f"{base}/admin")
    assert response.status == 200 and response.headers["content-security-policy"] == CSP
    return context, page, problems


async def test_an_operator_signs_in_decides_held_awards_and_signs_out(
    browser: Any, client: AppClient, flow: Flow
) -> None:
    base = f"http://{client.host}:{client.port}"
    await flow.award("carol", "q1")  # on the board already, with 100
    first, second = await _held(flow, "alice", "c1"), await _held(flow, "bob", "c2")
    context, page, problems = await _open(browser, base)
    token = AUTH.issue("ops-1", name="Ops", roles=("admin",), ttl_seconds=900)

    await page.get_by_label("Admin JWT").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_selector("#boards")
    assert page.url == f"{base}/admin"
    assert await page.locator("#operator").text_content() == "ops-1"
    boards = await page.locator("#boards tbody tr").evaluate_all("rows => rows.map(r => r.dataset.board)")
    assert boards == ["global", "weekly", "daily", "trial", "high", "latest"]
    trial = await page.locator('#boards tr[data-board="trial"] td').all_text_contents()
    assert trial[:8] == ["trial", "Time trial", "asc", "best", "never", "UTC", "12", "duration_ms"]
    # The JWT: in a cookie no script reads, sent to /admin alone, gone when the token expires.
    (cookie,) = await context.cookies()
    assert (cookie["name"], cookie["value"], cookie["path"]) == (COOKIE, token, "/admin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]
    assert abs(cookie["expires"] - (time.time() + 900)) < 30
    assert await page.evaluate("document.cookie") == ""
    assert token not in await page.content()

    # The queue: both held awards, with who, what and where.
    assert await page.locator("#held tbody tr[data-held]").evaluate_all("rows => rows.map(r => +r.dataset.held)") == [
        first,
        second,
    ]
    row = page.locator(f'#held tr[data-held="{first}"]')
    assert "alice" in await row.text_content() and "OPEN_CHEST" in await row.text_content()

    # Approve the first: it lands on the board the live page shows.
    await page.locator(f"#approve-{first}").fill("Replay checked ✓")
    await row.get_by_role("button", name="Approve").click()
    await page.wait_for_url(f"{base}/admin?done=approved&id={first}")
    assert await page.locator("#result").text_content() == f"Held award {first} approved: it landed on its boards."
    assert await page.locator(f'#held tr[data-held="{first}"]').count() == 0
    live = await context.new_page()
    await live.goto(f"{base}/")
    scores = await live.locator("#board-body tr[data-user-id]").evaluate_all(
        "rows => rows.map(r => [r.dataset.userId, +r.dataset.score])"
    )
    assert scores == [["carol", 100], ["alice", 10]]
    await live.close()

    # Reject the second: it never lands, and the decided tab says by whom and why.
    await page.locator(f"#reject-{second}").fill("21 chests in 4 minutes")
    await page.locator(f'#held tr[data-held="{second}"]').get_by_role("button", name="Reject").click()
    await page.wait_for_url(f"{base}/admin?done=rejected&id={second}")
    assert "rejected" in await page.locator("#result").text_content()
    assert await page.locator("#held .empty").text_content() == "No pending held awards"
    await page.get_by_role("link", name="Rejected").click()
    decided = await page.locator(f'#held tr[data-held="{second}"]').text_content()
    assert "rejected by ops-1" in decided and "21 chests in 4 minutes" in decided
    top = await (await page.request.get(f"{base}/api/v1/boards/global/top")).json()
    assert [e["userId"] for e in top["data"]["leaderboard"]] == ["carol", "alice"]

    # A user's page, from the queue's link.
    await page.get_by_role("link", name="bob").first.click()
    await page.wait_for_selector("#user")
    assert page.url == f"{base}/admin/users?id=bob"
    assert "rejected" in await page.locator(f'#user-held tr[data-held="{second}"]').text_content()

    # Sign out: the cookie is gone, and the page asks to sign in again.
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(f"{base}/admin?done=signed-out")
    assert await page.locator("#result").text_content() == "Signed out."
    assert await context.cookies() == []
    await page.goto(f"{base}/admin")
    assert await page.get_by_label("Admin JWT").is_visible() and await page.locator("#boards").count() == 0
    assert problems == []
    await context.close()


async def test_a_players_jwt_is_refused(browser: Any, client: AppClient) -> None:
    base = f"http://{client.host}:{client.port}"
    context, page, problems = await _open(browser, base)
    await page.get_by_label("Admin JWT").fill(AUTH.issue("player-1", name="Player"))
    async with page.expect_response(f"{base}/admin/session") as answer:
        await page.get_by_role("button", name="Sign in").click()
    assert (await answer.value).status == 403
    refusal = await page.locator("#refusal").text_content()
    assert "operators (the admin role)" in refusal and "FORBIDDEN" in refusal
    assert await context.cookies() == [] and await page.locator("#boards").count() == 0
    # The form again, to try another token; the refused one is not in it.
    assert await page.get_by_label("Admin JWT").input_value() == ""
    # The refusal page is a document too: a console error is the 403 itself, nothing else.
    assert [p for p in problems if "403" not in p] == []
    await context.close()
