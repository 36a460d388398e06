"""Headless Chromium for the page's tests: Debian's package, driven by Playwright through
`executable_path` (never a browser download), kept off the network."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# The machine has no network beyond package registries: keep Chromium from reaching out.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def skip_without_chromium() -> None:
    """Skip the calling test module when Chromium is missing, except in CI, where it must be there."""
    if CHROMIUM is None and os.environ.get("CI") != "true":
        pytest.skip(
            "browser test skipped: no Debian chromium on PATH (apt-get install chromium)", allow_module_level=True
        )


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium, closed after the test."""
    from playwright.async_api import async_playwright

    assert CHROMIUM is not None, "CI=true needs Debian's chromium installed"
    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        await instance.close()
