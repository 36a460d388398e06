"""The README documents every setting and environment variable the code reads, and the API
documentation page (/api/docs) shows the routes of the OpenAPI document."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec
import pytest

from app import create_app
from app.config import ENV_OVERRIDES, ActionSettings, BoardSettings, FileSettings, ServiceSettings

from .browsers import CHROMIUM
from .conftest import make_config

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


NAMED: dict[str, type] = {"actions": ActionSettings, "boards": BoardSettings, "services": ServiceSettings}


def _keys() -> list[str]:
    keys = []
    for field in msgspec.structs.fields(FileSettings):
        if field.name in NAMED:
            keys += [f"{field.name}.NAME.{f.name}" for f in msgspec.structs.fields(NAMED[field.name])]
        else:
            keys += [f"{field.name}.{f.name}" for f in msgspec.structs.fields(field.type)]
    return keys


def test_every_setting_documented() -> None:
    missing = [key for key in _keys() if f"`{key}`" not in README]
    assert not missing, f"settings missing from the README's configuration reference: {missing}"


def test_every_environment_variable_documented() -> None:
    names = [*ENV_OVERRIDES, "SCOREBOARD_CONFIG", "SCOREBOARD_ENV", "SCOREBOARD_JWT_SECRET", "SCOREBOARD_ACTION_SECRET"]
    names.append("SCOREBOARD_ACTION_PREVIOUS_SECRETS")
    assert [n for n in names if n not in README] == []


def test_readme_first_screen_has_the_two_commands() -> None:
    first_screen = "\n".join(README.splitlines()[:25])
    assert "run.py" in first_screen and ".ci/run" in first_screen


def _operation(page: Any, method: str, path: str) -> Any:
    """The rendered operation of `method path`."""
    return page.locator("details.op").filter(
        has=page.locator(f"summary:has(.badge-{method.lower()}):has(code.path:text-is('{path}'))")
    )


@pytest.mark.browser
@pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true", reason="no Debian chromium on PATH (apt-get install chromium)"
)
async def test_docs_page_shows_the_board_routes(aiohttp_client: Any, tmp_path: Path, browser: Any) -> None:
    client = await aiohttp_client(create_app(make_config(tmp_path / "db.sqlite")))
    page = await browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    # The browser's own ask for /favicon.ico is no part of the page.
    page.on("response", lambda r: problems.append(r.url) if r.status >= 400 and "favicon" not in r.url else None)
    await page.goto(f"http://{client.host}:{client.port}/api/docs")
    await page.wait_for_selector("details.op")
    paths = await page.locator("details.op summary code.path").all_text_contents()
    for path in ("/api/v1/boards", "/api/v1/boards/{board}/top", "/api/v1/boards/{board}/around/{userId}"):
        assert path in paths

    write = _operation(page, "POST", "/api/v1/boards/{board}/scores")
    assert await write.count() == 1
    await write.locator("summary").click()
    rows = write.locator("table.grid tr").filter(has=page.locator("td code", has_text="Idempotency-Key"))
    cells = await rows.first.locator("td").all_text_contents()
    assert cells[:3] == ["Idempotency-Key", "header", "required"]
    assert "1-100 visible ASCII characters" in cells[4]
    note = await write.locator(".auth-note").text_content()
    assert note == "Requires authentication: serviceKey (Bearer token) needing scores:write"
    assert "SHA-256" in " ".join(await write.locator(".auth-scheme").all_text_contents())
    assert "within 24 h" in " ".join(await write.locator(".op-body > p.desc").all_text_contents())

    create = _operation(page, "POST", "/api/v1/admin/boards")
    await create.locator("summary").click()
    note = await create.locator(".auth-note").text_content()
    assert note == "Requires authentication: bearer (Bearer token) needing admin"
    assert await create.locator("summary .lock").text_content() == "🔒 bearer"

    await page.locator("input.filter").fill("/boards/{board}/")
    shown = await page.locator("details.op:not([hidden]) summary code.path").all_text_contents()
    assert shown and all("/boards/{board}/" in path for path in shown)
    assert problems == []
