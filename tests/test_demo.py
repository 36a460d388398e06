"""`python run.py demo`: simulated players move the board through the real flow."""

from __future__ import annotations

import time
from pathlib import Path

from app.config import LimitSettings
from app.demo import demo_config

from .conftest import make_config
from .real_servers import run_py


def test_demo_config_uses_own_database_and_lets_players_through(tmp_path: Path) -> None:
    config = make_config(
        tmp_path / "x.db", storage={"sqlite_path": "./data/scoreboard.db"}, limits={"ip_requests_per_minute": 100}
    )
    demo = demo_config(config)
    assert demo.storage.sqlite_path == "./data/demo.db"
    assert demo.limits.ip_requests_per_minute >= 100_000
    assert demo.limits.updates_per_minute == config.limits.updates_per_minute  # players respect it
    # A player initializes once per update, or once per pause after a refusal: within the defaults.
    defaults = LimitSettings()
    assert defaults.initializes_per_minute >= defaults.updates_per_minute
    custom = demo_config(make_config(tmp_path / "mine.db"))
    assert custom.storage.sqlite_path == str(tmp_path / "mine.db")


def test_demo_board_moves(tmp_path: Path) -> None:
    env = {"SCOREBOARD_SQLITE_PATH": str(tmp_path / "demo.db")}
    with run_py(env, "demo", "--players", "6") as server:
        deadline = time.monotonic() + 20
        board: list[dict[str, object]] = []
        while time.monotonic() < deadline and len(board) < 2:
            time.sleep(0.5)
            status, body = server.request("GET", "/api/v1/scoreboard/top")
            assert status == 200
            board = body["data"]["leaderboard"]
        assert len(board) >= 2, server.log
        assert all(str(e["userId"]).startswith("demo-") for e in board)
