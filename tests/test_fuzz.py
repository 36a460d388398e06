"""Schemathesis against a real server: every route of /api/openapi.json with valid and invalid
requests, the authenticated ones with an operator's bearer or a service key, then the document's
links followed (initialize -> update -> the user's score). Any 5xx, any answer that its
documented status, type, headers or schema do not describe, or any finding of
tests/schemathesis.toml fails.

Bounded by a time budget (`--max-time`), not a count: a slower machine tests fewer cases in the
same minute. `SCOREBOARD_FUZZ_SECONDS` changes the budget, `SCOREBOARD_FUZZ_SEED` the cases."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .conftest import ACTION_SECRET, JWT_SECRET
from .isolation import REDIS_URL
from .real_servers import ROOT, run_py

pytestmark = pytest.mark.fuzz

SCHEMATHESIS_CONFIG = ROOT / "tests" / "schemathesis.toml"
# Seconds of each run: enough, with 22 operations, for the stateful phase to reach an award
# (initialize -> update) after the other phases, in either set-up.
BUDGETS = {"embedded": 60, "redis": 60}
SEED = os.environ.get("SCOREBOARD_FUZZ_SEED", "20261203")  # fixed: CI draws the same cases in the same order
SERVICE_KEY = "fuzz-service-key-0123456789abcdef"  # the test server's trusted-write key


def _server_config(path: Path, *, sqlite: Path, redis_prefix: str | None) -> None:
    """A configuration of its own: limits so generous that the run is not measuring 429s (the
    document still declares them), small bodies, an action catalog with no minimum time, boards of
    each kind (`weekly` is the document's example of a board id, so generated requests reach a board
    that exists) and a trusted service that writes scores and attests actions."""
    redis = f'redis_prefix = "{redis_prefix}"' if redis_prefix else ""
    path.write_text(
        f"""
[server]
max_body_bytes = 1024  # small: bodies over it come up often, and so does their 413

[storage]
sqlite_path = "{sqlite}"
{redis}

[limits]
updates_per_minute = 1000000
initializes_per_minute = 1000000
tokens_per_user = 1000000
ws_handshakes_per_ip_per_minute = 1000000
ip_requests_per_minute = 1000000

[log]
level = "WARNING"  # the errors, not a line per request

[boards.global]

[boards.weekly]
reset = "weekly"

[boards.trial]
order = "asc"
operator = "best"
format = "duration_ms"

[services.fuzzer]
key_sha256 = "{hashlib.sha256(SERVICE_KEY.encode()).hexdigest()}"
scopes = ["scores:write", "actions:attest"]

[actions.COMPLETE_QUEST]
score = 100
boards = ["global", "weekly"]

[actions.DEFEAT_BOSS]
score = 500

[actions.OPEN_CHEST]
score = 10
hold_over_per_hour = 0  # every award held: the operators' decisions have something to decide
""",
        encoding="utf-8",
    )


def _hold_awards(url: str, token: str, count: int = 40) -> None:
    """Awards held for the operator before the run (every OPEN_CHEST is held), numbered 1 to
    `count`: the decisions' generated ids, small ones above all, find pending ones to decide."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the server is local

    def post(path: str, body: dict[str, str]) -> Any:
        request = urllib.request.Request(
            url + path,
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with opener.open(request, timeout=10) as answer:
            return answer.status, json.load(answer)["data"]

    for i in range(count):
        _, started = post("/api/v1/actions/initialize", {"actionType": "OPEN_CHEST", "actionId": f"seed-{i}"})
        status, held = post(
            "/api/v1/scoreboard/update", {"actionToken": started["actionToken"], "actionId": f"seed-{i}"}
        )
        assert (status, held["status"]) == (202, "held"), held


def _need_schemathesis() -> None:
    if importlib.util.find_spec("schemathesis") is not None:
        return
    message = "schemathesis is not installed (pip install -r requirements-dev.txt)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _fuzz(tmp_path: Path, *, redis_prefix: str | None, seconds: int) -> None:
    _need_schemathesis()
    config = tmp_path / "config.toml"
    _server_config(config, sqlite=tmp_path / "fuzz.db", redis_prefix=redis_prefix)
    env = {  # set in full, so that nothing of the caller's SCOREBOARD_* environment leaks in
        "SCOREBOARD_CONFIG": str(config),
        "SCOREBOARD_ENV": "test",
        "SCOREBOARD_HOST": "127.0.0.1",
        "SCOREBOARD_JWT_SECRET": JWT_SECRET.decode(),
        "SCOREBOARD_ACTION_SECRET": ACTION_SECRET.decode(),
        "SCOREBOARD_ACTION_PREVIOUS_SECRETS": "",
        "SCOREBOARD_SQLITE_PATH": str(tmp_path / "fuzz.db"),
        "SCOREBOARD_REDIS_URL": REDIS_URL if redis_prefix else "",
        "SCOREBOARD_DATABASE_URL": "",
    }
    token = subprocess.run(
        # An operator too, so that the operator routes are tested beyond their 403.
        [sys.executable, str(ROOT / "run.py"), "token", "fuzzer", "--name", "Fuzzer", "--role", "admin"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with run_py(env, log_path=tmp_path / "server.log") as server:
        _hold_awards(server.url, token)
        command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(SCHEMATHESIS_CONFIG), "--no-color"]
        command += ["run", f"{server.url}/api/openapi.json", "--max-time", str(seconds), "--seed", SEED]
        run = subprocess.run(
            command,
            check=False,  # its exit status is the verdict, asserted below with its report
            cwd=ROOT,
            env={
                **os.environ,
                "SCOREBOARD_FUZZ_TOKEN": token,
                "SCOREBOARD_FUZZ_SERVICE_KEY": SERVICE_KEY,
                "HYPOTHESIS_STORAGE_DIRECTORY": str(tmp_path / "hypothesis"),  # not the working tree
            },
            capture_output=True,
            text=True,
        )
    print(run.stdout, run.stderr, sep="\n")  # the report, shown by pytest when the test fails
    errors = [line for line in server.log.decode(errors="replace").splitlines() if '"level":"ERROR"' in line]
    print("server errors:", *errors, sep="\n")
    if run.returncode != 0:
        pytest.fail(f"schemathesis found problems (exit {run.returncode}): its report is in the captured stdout", False)


def _budget(backend: str) -> int:
    return int(os.environ.get("SCOREBOARD_FUZZ_SECONDS", BUDGETS[backend]))


async def test_fuzz_embedded(tmp_path: Path) -> None:
    _fuzz(tmp_path, redis_prefix=None, seconds=_budget("embedded"))


async def test_fuzz_sqlite_redis(tmp_path: Path, redis_prefix: str) -> None:
    _fuzz(tmp_path, redis_prefix=redis_prefix, seconds=_budget("redis"))
