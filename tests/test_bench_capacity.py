"""bench/capacity.py with the Python client (no wrk): single-use requests go out once each,
others are cycled for the whole duration, and each route reports the server's CPU per answer."""

from __future__ import annotations

import os
from collections import Counter

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench import capacity, wrk
from bench.options import Options


async def test_python_closed_loop_sends_single_use_requests_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wrk, "available", lambda: False)
    uses: Counter[str] = Counter()

    async def use(request: web.Request) -> web.Response:
        uses[request.headers.get("Authorization", "") + await request.text()] += 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{any:.*}", use)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    once = [(f"b{i}", f'{{"t":{i}}}'.encode()) for i in range(50)]
    routes = [capacity.Route("once", "POST", "/once", once, once=True), capacity.Route("cycled", "GET", "/cycled")]
    try:
        async with aiohttp.ClientSession() as session:
            result = await capacity.measure(
                Options(concurrency=4, capacity_seconds=0.3), session, str(server.make_url("")), os.getpid(), routes
            )
    finally:
        await server.close()
    assert result["concurrency"] == 4
    assert result["once"]["sent"] == result["once"]["ok"] == 50
    assert sorted(uses[f"Bearer b{i}" + f'{{"t":{i}}}'] for i in range(50)) == [1] * 50
    assert result["cycled"]["sent"] == result["cycled"]["ok"] == uses[""] > 50  # cycled for the whole 0.3 s
    assert all("server_cpu_us_per_request" in result[name] for name in ("once", "cycled"))
