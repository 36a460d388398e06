"""`python run.py demo`: simulated players move the all-time and weekly boards through the real
flow, and a simulated game server writes lap times to the time-trial board with a key of its own."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

import run
from app import create_app
from app.config import Config, load_config
from app.demo import GLOBAL, KEY_PREFIX, RACER, TRIAL, WEEKLY, ServiceKey, demo_config, demo_players
from app.settings import LimitSettings

from .boards.scene import boards_config
from .conftest import make_config
from .real_servers import ROOT, run_py


def test_demo_config_uses_own_database_and_lets_players_through(tmp_path: Path) -> None:
    config = make_config(
        tmp_path / "x.db", storage={"sqlite_path": "./data/scoreboard.db"}, limits={"ip_requests_per_minute": 100}
    )
    demo = demo_config(config)
    assert demo.storage.sqlite_path == "./data/demo.db"
    assert demo.settings.log.level == "WARNING"  # a line per request would bury the served URL
    debug = make_config(tmp_path / "x.db", log={"level": "DEBUG"})
    assert demo_config(debug).settings.log.level == "DEBUG"  # asked for: kept
    assert demo.limits.ip_requests_per_minute >= 100_000
    assert demo.limits.updates_per_minute == config.limits.updates_per_minute  # players respect it
    # A player initializes once per update, or once per pause after a refusal: within the defaults.
    defaults = LimitSettings()
    assert defaults.initializes_per_minute >= defaults.updates_per_minute
    custom = demo_config(make_config(tmp_path / "mine.db"))
    assert custom.storage.sqlite_path == str(tmp_path / "mine.db")


def test_demo_players_sign_their_own_bearers_even_where_a_provider_is_configured(tmp_path: Path) -> None:
    auth = {"jwks_url": "https://id.example/jwks.json", "issuer": "https://id.example/", "audience": "sb"}
    demo = demo_config(make_config(tmp_path / "x.db", auth=auth))
    assert demo.auth.jwks_url is None and demo.auth.accepted_algorithms == ("HS256",)
    assert (demo.auth.issuer, demo.auth.audience) == ("https://id.example/", "sb")  # what players' tokens carry


def test_demo_board_moves_and_the_terminal_stays_readable(tmp_path: Path) -> None:
    env = {"SCOREBOARD_SQLITE_PATH": str(tmp_path / "demo.db")}
    with run_py(env, "demo", "--players", "6") as server:
        deadline = time.monotonic() + 20
        board: list[dict[str, object]] = []
        while time.monotonic() < deadline and (len(board) < 2 or b" awards and " not in server.log):
            time.sleep(0.5)
            status, body = server.request("GET", "/api/v1/scoreboard/top")
            assert status == 200
            board = body["data"]["leaderboard"]
        assert len(board) >= 2, server.log
        assert all(str(e["userId"]).startswith("demo-") for e in board)
    # Hundreds of requests, and the terminal shows where to watch and a summary every few seconds,
    # not a line per request.
    lines = server.log.decode(errors="replace").splitlines()
    url = f"http://127.0.0.1:{server.port}"
    assert lines[:4] == [
        "demo: the live page as Ada (demo-1), with the ranks around them:",
        lines[1],  # the signed-in link
        f"======== Running on {url} ========",
        "(Press CTRL+C to quit)",
    ], lines
    assert lines[1].startswith(f"  {url}/#token=")
    summaries = [line for line in lines[4:] if line.startswith("demo: ")]
    assert summaries and all(line.endswith(f"; watch at {url}") for line in summaries), lines
    assert re.fullmatch(r"demo: [1-9][0-9]* awards and [0-9]+ lap times in the last 5 s; watch at .*", summaries[0])
    assert not [line for line in lines[4:] if line not in summaries and '"level":"INFO"' in line], lines
    assert len(lines) < 4 + len(summaries) + 5, lines  # the drain's WARNING lines at most


RACER_KEY = KEY_PREFIX + "known-to-this-test-only-0123456789abcdef"


def test_demo_declares_its_own_boards_whatever_the_file_says(tmp_path: Path) -> None:
    # A configuration with boards, awards and services of its own: the demo keeps none of them.
    mine = boards_config(tmp_path / "x.db", {}, server={"default_board": "weekly"})
    key = ServiceKey(RACER_KEY)
    demo = demo_config(mine, key)
    assert list(demo.boards) == [GLOBAL, WEEKLY, TRIAL]
    assert demo.server.default_board == GLOBAL
    assert (demo.boards[GLOBAL].reset, demo.boards[GLOBAL].operator) == ("never", "incr")
    assert (demo.boards[WEEKLY].reset, demo.boards[WEEKLY].operator) == ("weekly", "incr")
    trial = demo.boards[TRIAL]
    assert (trial.order, trial.operator, trial.format) == ("asc", "best", "duration_ms")
    assert set(demo.actions) == set(mine.actions)
    assert all(action.boards == (GLOBAL, WEEKLY) for action in demo.actions.values())
    assert list(demo.services) == [RACER]
    racer = demo.services[RACER]
    assert racer.key_sha256 == hashlib.sha256(RACER_KEY.encode()).hexdigest()
    assert (racer.scopes, racer.boards) == (("scores:write",), (TRIAL,))
    # Only the hash is kept, and the key object never shows its key.
    assert RACER_KEY not in msgspec.json.encode(demo.settings).decode()
    assert RACER_KEY not in repr(key) and RACER_KEY not in str(key) and RACER_KEY not in repr(demo)
    assert demo_config(mine).services == {}  # no key, no trusted server
    # The shipped config.toml declares no boards: the demo needs nothing of it.
    shipped = demo_config(load_config(ROOT / "config.toml", {}), ServiceKey())
    assert list(shipped.boards) == [GLOBAL, WEEKLY, TRIAL] and list(shipped.services) == [RACER]


def test_a_fresh_key_every_run() -> None:
    first, second = ServiceKey(), ServiceKey()
    assert first.sha256 != second.sha256
    assert first.authorization().startswith(f"Bearer {KEY_PREFIX}")


def test_run_demo_hands_its_key_to_the_racer_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, Any] = {}

    def serve(config: Config, **kwargs: Any) -> None:
        seen.update(kwargs, config=config)

    monkeypatch.setattr(run, "serve", serve)
    assert run.main(["--config", str(ROOT / "config.toml"), "demo", "--players", "3"]) == 0
    key = seen["racer_key"]
    assert isinstance(key, ServiceKey) and seen["demo"] == 3
    assert seen["config"].services[RACER].key_sha256 == key.sha256
    out = capsys.readouterr()
    assert key.authorization().split()[1] not in out.out + out.err


async def test_players_and_racer_fill_every_demo_board(
    aiohttp_server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    config = demo_config(make_config(tmp_path / "demo.db"), ServiceKey(RACER_KEY))
    app = create_app(config)
    writes: list[tuple[str | None, str | None, int]] = []

    @web.middleware
    async def spy(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.path == f"/api/v1/boards/{TRIAL}/scores":
            writes.append(
                (request.headers.get("Authorization"), request.headers.get("Idempotency-Key"), response.status)
            )
        return response

    app.middlewares.insert(0, spy)
    server = await aiohttp_server(app)
    base_url = str(server.make_url("")).rstrip("/")
    summaries: list[str] = []
    players = demo_players(
        config,
        base_url,
        players=4,
        seed=7,
        racer_key=ServiceKey(RACER_KEY),
        announce=summaries.append,
        summary_seconds=0.5,
    )

    async with aiohttp.ClientSession(base_url) as http:

        async def top(board: str) -> list[dict[str, Any]]:
            async with http.get(f"/api/v1/boards/{board}/top") as resp:
                assert resp.status == 200
                entries: list[dict[str, Any]] = (await resp.json())["data"]["leaderboard"]
                return entries

        async with contextlib.asynccontextmanager(players)(app):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (len(await top(WEEKLY)) < 2 or len(await top(TRIAL)) < 2):
                await asyncio.sleep(0.2)
        weekly, trial, everything = await top(WEEKLY), await top(TRIAL), await top(GLOBAL)

    assert len(weekly) >= 2 and len(trial) >= 2, (weekly, trial)
    # Every award counts on both boards: in a fresh week of a fresh database they agree.
    assert [(e["userId"], e["score"]) for e in weekly] == [(e["userId"], e["score"]) for e in everything]
    times = [e["score"] for e in trial]
    assert times == sorted(times) and all(55_000 <= t <= 95_000 for t in times)
    assert all(e["userId"].startswith("demo-") and e["metadata"]["car"] for e in trial)
    assert writes and all(auth == f"Bearer {RACER_KEY}" and status == 200 for auth, _, status in writes)
    keys = [key for _, key, _ in writes]
    assert all(keys) and len(set(keys)) == len(keys)  # a key of its own for every lap
    shown = capsys.readouterr()
    assert RACER_KEY not in caplog.text + shown.out + shown.err
    counted = [
        re.fullmatch(r"demo: (\d+) awards and (\d+) lap times in the last 0.5 s; watch at (.*)", line)
        for line in summaries
    ]
    assert counted and all(match is not None and match[3] == base_url for match in counted), summaries
    awards = sum(int(match[1]) for match in counted if match is not None)
    laps = sum(int(match[2]) for match in counted if match is not None)
    assert awards > 0 and 0 < laps <= len(writes)


def test_demo_process_fills_the_weekly_and_trial_boards_and_never_shows_its_key(tmp_path: Path) -> None:
    env = {"SCOREBOARD_SQLITE_PATH": str(tmp_path / "demo.db")}
    with run_py(env, "demo", "--players", "6") as server:
        status, body = server.request("GET", "/api/v1/boards")
        assert status == 200
        assert [b["id"] for b in body["data"]["boards"]] == [GLOBAL, WEEKLY, TRIAL]
        deadline = time.monotonic() + 30
        filled: dict[str, list[dict[str, Any]]] = {WEEKLY: [], TRIAL: []}
        while time.monotonic() < deadline and min(len(entries) for entries in filled.values()) < 2:
            time.sleep(0.5)
            for board in filled:
                status, body = server.request("GET", f"/api/v1/boards/{board}/top")
                assert status == 200
                filled[board] = body["data"]["leaderboard"]
        assert len(filled[WEEKLY]) >= 2 and len(filled[TRIAL]) >= 2, server.log_tail()
        assert all(55_000 <= e["score"] <= 95_000 for e in filled[TRIAL])
    log = server.log.decode(errors="replace")
    assert f"http://127.0.0.1:{server.port}" in log  # the served URL stays visible
    assert KEY_PREFIX not in log and "Bearer" not in log
