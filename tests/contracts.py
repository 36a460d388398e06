"""Helpers of the contract tests: one set of tests per interface, run against every implementation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

LOCAL, REDIS = "local", "redis"


def redis_prefix_for(request: pytest.FixtureRequest) -> str | None:
    """The test's own Redis key prefix when the implementation under test is Redis's (skipping with
    one line when Redis is absent, failing under CI=true); None for an implementation in this process."""
    if request.param != REDIS:
        return None
    prefix: str = request.getfixturevalue("redis_prefix")
    return prefix


async def until(condition: Callable[[], Awaitable[bool]], what: str, seconds: float = 5.0) -> None:
    """Poll `condition` every 10 ms until it holds; fail naming `what` after `seconds`. The bound
    only keeps a broken test from hanging: it makes no claim about speed."""
    deadline = time.monotonic() + seconds
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {seconds} s")
        await asyncio.sleep(0.01)


async def eventually(check: Callable[[], Awaitable[Any]], seconds: float = 5.0) -> Any:
    """Run `check` every 100 ms until it stops failing an assertion; its last failure after
    `seconds` (a bound against hanging, no claim about speed)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
