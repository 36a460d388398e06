"""`run.py backup` under load and `run.py restore` into a fresh data path, with real servers: every
award acknowledged before the backup began is in the restored database and on the fresh server's
board, none half-written (every user's score is the sum of their history). Embedded, and SQLite +
Redis (where the restore must also drop the board Redis kept, or its newer scores would win)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import sqlite3
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import msgspec
import pytest

from app.auth import UserAuth

from .conftest import ACTION_SECRET, JWT_SECRET
from .isolation import REDIS_URL
from .real_servers import PROCESS_CONFIG, PROCESS_SCORES, ROOT, ServerProcess, run_py

CONFIG = PROCESS_CONFIG
SCORES = PROCESS_SCORES
USERS = ("ann", "ben", "cat", "dan", "eve", "fay")
PLAYERS = 12  # concurrent clients, two per user
WARM_AWARDS = 200  # acknowledged before the backup starts
AFTER_SECONDS = 0.5  # load kept up after the backup ended
_AUTH = UserAuth(JWT_SECRET)
_HEADERS = {user: {"Authorization": f"Bearer {_AUTH.issue(user, name=user.title())}"} for user in USERS}


@dataclass
class Award:
    """One update sent by a player: when it was sent and when (if) it was answered 200."""

    user: str
    nonce: str
    increment: int
    sent: float
    acknowledged: float | None = None


def _nonce(token: str) -> str:
    payload = token.split(".")[1]
    nonce: str = msgspec.json.decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["nonce"]
    return nonce


async def _player(http: aiohttp.ClientSession, url: str, user: str, tag: str, awards: list[Award]) -> None:
    """initialize, then update, until cancelled."""
    loop = asyncio.get_running_loop()
    for i in range(1_000_000):
        action_type = ("COMPLETE_QUEST", "DEFEAT_BOSS")[i % 2]
        body = {"actionType": action_type, "actionId": f"{tag}-{i}"}
        async with http.post(f"{url}/api/v1/actions/initialize", json=body, headers=_HEADERS[user]) as resp:
            assert resp.status == 200, await resp.text()
            token = (await resp.json())["data"]["actionToken"]
        award = Award(user, _nonce(token), SCORES[action_type], sent=loop.time())
        awards.append(award)
        update = {"actionToken": token, "actionId": f"{tag}-{i}"}
        async with http.post(f"{url}/api/v1/scoreboard/update", json=update, headers=_HEADERS[user]) as resp:
            assert resp.status == 200, await resp.text()
            award.acknowledged = loop.time()


async def _run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """`python run.py ARGS` in a subprocess, the event loop (and the players on it) running meanwhile."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "run.py"),
        *args,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@dataclass
class Ledger:
    """What a database file holds: score_history by nonce, and each user's entry on the default board."""

    history: dict[str, tuple[str, int]]  # nonce -> (user id, score change)
    scores: dict[str, int]

    @classmethod
    def read(cls, path: Path) -> Ledger:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            history = db.execute("SELECT token_nonce, user_id, score_change FROM score_history").fetchall()
            users = db.execute(
                "SELECT user_id, score FROM board_entries WHERE board = 'global' AND period = 'all'"
            ).fetchall()
        return cls(history={n: (u, c) for n, u, c in history}, scores=dict(users))

    def half_written(self) -> dict[str, tuple[int, int]]:
        """Users whose score is not the sum of their history: (score, sum)."""
        sums: Counter[str] = Counter()
        for user, change in self.history.values():
            sums[user] += change
        return {u: (self.scores.get(u, 0), sums[u]) for u in {*sums, *self.scores} if sums[u] != self.scores.get(u, 0)}


@pytest.fixture(params=["embedded", "sqlite+redis"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of `run.py` for one set-up (SCOREBOARD_SQLITE_PATH set per server)."""
    redis = request.param == "sqlite+redis"
    prefix = request.getfixturevalue("redis_prefix") if redis else "unused"
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(prefix=prefix))
    yield {
        "SCOREBOARD_ENV": "test",
        "SCOREBOARD_CONFIG": str(config),
        "SCOREBOARD_REDIS_URL": REDIS_URL if redis else "",
        "SCOREBOARD_DATABASE_URL": "",
        "SCOREBOARD_JWT_SECRET": JWT_SECRET.decode(),
        "SCOREBOARD_ACTION_SECRET": ACTION_SECRET.decode(),
    }


async def _scores(server: ServerProcess) -> dict[str, int | None]:
    """Each user's score as the fresh server's API reads it."""
    out: dict[str, int | None] = {}
    async with aiohttp.ClientSession() as http:
        for user in USERS:
            async with http.get(f"{server.url}/api/v1/users/{user}/score", headers=_HEADERS[user]) as resp:
                out[user] = (await resp.json())["data"]["score"] if resp.status == 200 else None
    return out


async def test_backup_under_load_restores_every_acknowledged_award(setup: dict[str, str], tmp_path: Path) -> None:
    live, backup, fresh = (
        tmp_path / "live" / "scoreboard.db",
        tmp_path / "backup.db",
        tmp_path / "fresh" / "scoreboard.db",
    )
    live_env = {**setup, "SCOREBOARD_SQLITE_PATH": str(live)}
    server = await run_py(live_env).astart()
    awards: list[Award] = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            players = [
                asyncio.create_task(_player(http, server.url, USERS[p % len(USERS)], f"p{p}", awards))
                for p in range(PLAYERS)
            ]
            loop = asyncio.get_running_loop()
            try:
                while sum(a.acknowledged is not None for a in awards) < WARM_AWARDS:
                    assert not any(p.done() for p in players), [p.exception() for p in players if p.done()]
                    await asyncio.sleep(0.01)
                began = loop.time()
                code, out, err = await _run("backup", str(backup), env=live_env)
                ended = loop.time()
                assert code == 0, err
                # While the server runs, a restore onto its file is refused and changes nothing.
                refused = await _run("restore", str(backup), env=live_env)
                await asyncio.sleep(AFTER_SECONDS)
                assert not any(p.done() for p in players), [p.exception() for p in players if p.done()]
            finally:
                for p in players:
                    p.cancel()
                await asyncio.gather(*players, return_exceptions=True)
    finally:
        await server.astop()
    assert out.splitlines() == [out.strip()] and out.startswith(f"backup: wrote {backup}"), out
    assert err == ""
    assert refused[0] == 1 and refused[1] == "", refused
    assert f"a server is using it (process {server.pid})" in refused[2], refused[2]
    assert not list(live.parent.glob("*.replaced-*")), "the refused restore set the live file aside"
    before = {a.nonce: a for a in awards if a.acknowledged is not None and a.acknowledged < began}
    during = [a for a in awards if a.acknowledged is not None and began <= a.acknowledged <= ended]
    after = {a.nonce for a in awards if a.sent > ended}
    assert during, "no award was acknowledged while the backup ran: it was not taken under load"
    assert after, "no award was sent after the backup"

    # Restore into a fresh data path (in the Redis set-up: beside the old board Redis still keeps).
    fresh_env = {**setup, "SCOREBOARD_SQLITE_PATH": str(fresh)}
    code, out, err = await _run("restore", str(backup), env=fresh_env)
    assert code == 0 and err == "", err
    assert out.splitlines() == [out.strip()] and out.startswith(f"restore: {fresh} now holds {backup}"), out
    assert "there was no database there before" in out
    restored = Ledger.read(fresh)
    assert not (missing := [a for n, a in before.items() if n not in restored.history]), (
        f"{len(missing)} of {len(before)} awards acknowledged before the backup began are not restored: {missing[:5]}"
    )
    assert not (later := after & set(restored.history)), f"awards sent after the backup ended were restored: {later}"
    ours = {a.nonce for a in awards}
    assert set(restored.history) <= ours, "the restored history holds awards nobody sent"
    assert restored.half_written() == {}, (
        f"half-written awards (user: score, sum of history): {restored.half_written()}"
    )

    server = await run_py(fresh_env).astart()
    try:
        expected = {user: restored.scores.get(user, 0) for user in USERS}
        deadline = asyncio.get_running_loop().time() + 5
        while (scores := await _scores(server)) != expected and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)  # the Redis board is rebuilt from the restored file at start
        assert scores == expected, f"the fresh server's scores {scores} != the restored database's {expected}"
        # And it goes on awarding.
        extra: list[Award] = []
        async with aiohttp.ClientSession() as http:
            task = asyncio.create_task(_player(http, server.url, "ann", "after-restore", extra))
            while not any(a.acknowledged for a in extra):
                assert not task.done(), task.exception()
                await asyncio.sleep(0.01)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await server.astop()
