"""The real server the SDK's tests talk to: `python run.py` with boards, a slow action, an action a
game server must attest, an action every award of which is held for an operator, two trusted services (one writes scores, one attests) and a tight per-user
update limit, and the users' and operators' tokens."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from app.auth import UserAuth

from .boards.scene import ATTEST_KEY, RACER_KEY, sha
from .conftest import ACTION_SECRET, JWT_SECRET
from .real_servers import ServerProcess, run_py

UPDATES_PER_MINUTE = 3  # per user: a fourth update within the minute is 429 RATE_LIMITED
SLOW_SECONDS = 1  # SLOW_PUZZLE's min_seconds
CONFIG = f"""
[server]
drain_seconds = 2
[log]
level = "WARNING"
[limits]
updates_per_minute = {UPDATES_PER_MINUTE}
initializes_per_minute = 1000
tokens_per_user = 1000
ip_requests_per_minute = 1000000
ws_connections_per_ip = 1000
ws_handshakes_per_ip_per_minute = 100000
[boards.global]
title = "All time"
[boards.weekly]
title = "This week"
reset = "weekly"
[boards.trial]
title = "Time trial"
order = "asc"
operator = "best"
format = "duration_ms"
[actions.COMPLETE_QUEST]
score = 100
boards = ["global", "weekly"]
[actions.SLOW_PUZZLE]
score = 50
min_seconds = {SLOW_SECONDS}
[actions.WIN_RACE]
score = 250
attest = true
[actions.OPEN_CHEST]
score = 10
hold_over_per_hour = 0
[services.racer]
key_sha256 = "{sha(RACER_KEY)}"
[services.attester]
key_sha256 = "{sha(ATTEST_KEY)}"
scopes = ["actions:attest"]
"""
USERS = UserAuth(JWT_SECRET)


def token(user_id: str, *, roles: tuple[str, ...] = ()) -> str:
    """A user's JWT (an operator's with roles=("admin",))."""
    return USERS.issue(user_id, name=user_id.title(), roles=roles)


def sdk_server(workdir: Path) -> ServerProcess:
    """The SDK tests' `run.py` (not started), with its own config and SQLite file in `workdir`."""
    config = workdir / "config.toml"
    config.write_text(CONFIG)
    env = {
        "SCOREBOARD_ENV": "test",
        "SCOREBOARD_CONFIG": str(config),
        "SCOREBOARD_SQLITE_PATH": str(workdir / "scoreboard.db"),
        "SCOREBOARD_REDIS_URL": "",
        "SCOREBOARD_DATABASE_URL": "",
        "SCOREBOARD_JWT_SECRET": JWT_SECRET.decode(),
        "SCOREBOARD_ACTION_SECRET": ACTION_SECRET.decode(),
    }
    return run_py(env)


def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A module fixture's server: started, and stopped after the module's tests (which use users
    and boards of their own)."""
    with sdk_server(tmp_path_factory.mktemp("sdk")) as process:
        yield process


class Requests:
    """The requests a session sent (method and path), recorded by an aiohttp trace."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.trace = aiohttp.TraceConfig()
        self.trace.on_request_start.append(self._start)

    async def _start(
        self, session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        self.sent.append((params.method, params.url.raw_path))

    def session(self) -> aiohttp.ClientSession:
        """A session whose requests are recorded."""
        return aiohttp.ClientSession(trace_configs=[self.trace])

    def count(self, method: str, path: str) -> int:
        """How many requests matched a method and a path template of the OpenAPI document."""
        pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")
        return sum(1 for m, p in self.sent if m == method and pattern.match(p))
