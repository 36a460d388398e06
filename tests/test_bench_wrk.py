"""bench/wrk.py against a small local server: single-use lines go out once each, and the rate
is taken over the time they took, not over wrk's whole duration."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench import capacity, wrk
from bench.capacity import costed


def _need_wrk() -> None:
    if wrk.available():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("wrk is not installed (CI=true: .ci/run installs it)")
    pytest.skip("wrk is not installed: apt-get install wrk to run this test")


async def _run(
    path: str, count: int, *, bearer: str | None = None, **options: Any
) -> tuple[Counter[str], dict[str, Any]]:
    """wrk over `count` distinct bodies to `path` of a local server; (uses per body, result)."""
    _need_wrk()
    uses: Counter[str] = Counter()

    async def use(request: web.Request) -> web.Response:
        token = await request.text()
        uses[token] += 1
        return web.Response(status=200 if uses[token] == 1 else 409)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.2)
        return await use(request)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/use", use)
    app.router.add_post("/slow", slow)
    app.router.add_get("/healthz", healthz)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        lines = [wrk.request_line("POST", path, bearer, f'{{"t":{i}}}'.encode()) for i in range(count)]
        result = await wrk.closed_loop(str(server.make_url("")), lines, **options)
    finally:
        await server.close()
    return uses, result


async def test_once_sends_each_line_once_and_stops_at_the_last_answer() -> None:
    uses, result = await _run("/use", 400, bearer="bearer-x", connections=8, seconds=3, once=True)
    assert len(uses) == 400 and set(uses.values()) == {1}  # every token once, none reused
    assert result["sent"] == result["ok"] == 400 and result["errors"] == {}
    assert 0 < result["seconds"] < 3  # the last answer came before -d (wrk itself still waits for -d)
    assert abs(result["ok_per_second"] * result["seconds"] - 400) < 1  # the rate over that time


async def test_once_waits_for_the_last_line_not_for_fillers() -> None:
    # 10 slow lines over 8 connections: the last two go out in a second round, while the
    # connections that are done send fillers, whose fast answers must not end the run early.
    uses, result = await _run("/slow", 10, connections=8, seconds=3, once=True)
    assert len(uses) == 10 and set(uses.values()) == {1}
    assert result["ok"] == 10 and result["errors"] == {} and result["statuses"] == {"2xx": 10, "other": 0}
    assert 0.4 <= result["seconds"] < 3


async def test_without_once_lines_cycle_for_the_whole_duration() -> None:
    uses, result = await _run("/use", 3, connections=2, seconds=1)
    assert set(uses) == {'{"t":0}', '{"t":1}', '{"t":2}'} and max(uses.values()) > 1
    assert result["seconds"] >= 1 and result["errors"] == {"non-2xx": result["sent"] - 3}


async def test_costed_adds_the_servers_cpu_per_answer() -> None:
    async def busy_loop() -> dict[str, Any]:
        deadline = time.process_time() + 0.05
        while time.process_time() < deadline:  # 50 ms of this process's CPU for 100 answers
            pass
        return {"sent": 100}

    summary = await costed(os.getpid(), busy_loop())
    assert summary["sent"] == 100
    assert 400 <= summary["server_cpu_us_per_request"] <= 5_000  # ~500 µs each, coarse clock ticks
    assert "server_cpu_us_per_request" not in await costed(os.getpid(), _nothing())


async def _nothing() -> dict[str, Any]:
    return {"sent": 0}


async def test_settled_counts_the_work_put_off_until_the_server_is_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capacity, "SETTLE_QUIET", 0.3)

    def put_off() -> None:  # 300 ms of CPU on another thread once the answers are in
        deadline = time.thread_time() + 0.3
        while time.thread_time() < deadline:
            pass

    async def answered() -> dict[str, Any]:
        threading.Thread(target=put_off).start()
        return {"sent": 100}

    summary = await costed(os.getpid(), answered(), settled=True)
    assert summary["settle_seconds"] >= 0.5  # the 300 ms of work, then 300 ms idle
    assert summary["server_cpu_us_per_request"] >= 2_500  # the put-off work counted: 3 ms per answer
    unsettled = await costed(os.getpid(), answered())
    assert "settle_seconds" not in unsettled
    assert unsettled["server_cpu_us_per_request"] < 2_500
    await capacity.settle(os.getpid())  # the second thread's work done before the test ends
