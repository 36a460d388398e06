"""A rolling restart loses nothing: two `run.py --reuse-port` processes share one port while
players award and viewers watch throughout; each process in turn is replaced (the new one starts
beside it, then it gets SIGTERM and drains). Every award answered 200 is in the database and on the
final board, and every viewer, closed with 1012 and reconnected with jitter as the live page does,
ends on the final board.

The clients do what the contract tells a client to do: an update that got no answer (its
connection was closed under it) is sent again with the same token, and answers 200 once or `409
TOKEN_ALREADY_USED`, which means it committed. Run with SQLite + Redis and PostgreSQL + Redis; the
embedded set-up (one process, so no second one to take over) restarts in place, and the clients
wait for it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest

from app.auth import UserAuth
from app.errors import CLOSE_SERVICE_RESTART

from .conftest import ACTION_SECRET, JWT_SECRET
from .isolation import REDIS_URL, schema_dsn
from .live_client import WS
from .real_servers import PROCESS_CONFIG, PROCESS_SCORES, ServerProcess, free_port, run_py

DRAIN_SECONDS = 5
CONFIG = f"\n[server]\ndrain_seconds = {DRAIN_SECONDS}" + PROCESS_CONFIG
SCORES = PROCESS_SCORES
USERS = ("ann", "ben", "cat", "dan", "eve", "fay")  # fewer than 10: the top 10 is the whole board
VIEWERS = 16  # enough that each process holds some of them (the kernel spreads connections)
PLAY_SECONDS = 1.5  # players and viewers at work before, between and after the restarts
RECONNECT_JITTER_SECONDS = 0.5  # what a viewer waits after a 1012, at most (static/scoreboard-client.js: up to 1 s)
RETRY_SECONDS = 0.05
REQUEST_SECONDS = 10.0
SETTLE_SECONDS = 10.0  # how long the viewers may take to show the final board
EXIT_SLACK_SECONDS = 1.0

_AUTH = UserAuth(JWT_SECRET)
_HEADERS = {user: {"Authorization": f"Bearer {_AUTH.issue(user, name=user.title())}"} for user in USERS}
Answer = tuple[int, str | None]  # status and error code


@dataclass
class Award:
    """One action token and every answer its update got (None: no answer)."""

    user: str
    action_type: str
    token: str
    answers: list[Answer | None] = field(default_factory=list)

    @property
    def nonce(self) -> str:
        claims: dict[str, Any] = msgspec.json.decode(_b64(self.token.split(".")[1]))
        nonce: str = claims["nonce"]
        return nonce

    @property
    def acknowledged(self) -> bool:
        """Answered 200, or 409 TOKEN_ALREADY_USED to a retry: the contract says it committed."""
        return (200, None) in self.answers or (None in self.answers and (409, "TOKEN_ALREADY_USED") in self.answers)


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Viewer:
    """A live page's WebSocket: the last board it was sent, and how each of its connections ended."""

    board: dict[str, int] | None = None
    closes: list[tuple[int | None, int]] = field(default_factory=list)  # (close code, restart it came in)
    connects: int = 0


@dataclass
class Rollout:
    """The processes behind the port, the restarts so far, and what the clients saw."""

    env: dict[str, str]
    port: int
    share_port: bool
    servers: list[ServerProcess] = field(default_factory=list)
    everyone: list[ServerProcess] = field(default_factory=list)
    restarts: int = 0
    drains: list[tuple[int | None, float]] = field(default_factory=list)  # exit status, seconds from SIGTERM

    def spawn(self) -> ServerProcess:
        """A new process on the shared port, ready once it says it listens (the port alone would
        answer from the other process)."""
        server = run_py(self.env, *(["--reuse-port"] if self.share_port else []), port=self.port)
        server.answers = lambda: b"Running on" in server.log
        self.everyone.append(server)
        return server

    async def drain(self, server: ServerProcess) -> None:
        """SIGTERM, and wait for the exit (bounded)."""
        assert server.proc is not None
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = await asyncio.to_thread(server.proc.wait, DRAIN_SECONDS + 5)
        except subprocess.TimeoutExpired:
            code = None
        self.drains.append((code, time.monotonic() - signalled))
        await server.astop()

    async def restart(self, index: int) -> None:
        """Replace one process: its successor first when the port is shared, else after it."""
        old = self.servers[index]
        self.restarts += 1
        if self.share_port:
            self.servers[index] = await self.spawn().astart()
            await self.drain(old)
        else:
            await self.drain(old)
            self.servers[index] = await self.spawn().astart()

    def stop_all(self) -> None:
        for server in self.everyone:
            server.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {s.name} on {s.port}:\n{s.log_tail(20)}" for s in self.everyone)


class Clients:
    """Players awarding and viewers watching, all through the one port, until `finish`."""

    def __init__(self, rollout: Rollout) -> None:
        self.rollout = rollout
        self.url = f"http://127.0.0.1:{rollout.port}"
        self.awards: list[Award] = []
        self.viewers = [Viewer() for _ in range(VIEWERS)]
        self.unanswered = 0
        self.errors: Counter[Answer] = Counter()
        self._playing = True
        self._watching = True
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_SECONDS))
        self._players = [asyncio.create_task(self._play(user)) for user in USERS]
        self._watchers = [asyncio.create_task(self._watch(v)) for v in self.viewers]

    async def _call(self, path: str, user: str, body: Any) -> tuple[Answer, Any] | None:
        try:
            async with self._http.post(self.url + path, json=body, headers=_HEADERS[user]) as resp:
                data = msgspec.json.decode(await resp.read())
        except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError):
            return None
        code = None if data.get("success") else data.get("error", {}).get("code")
        return (resp.status, code), data.get("data")

    async def _play(self, user: str) -> None:
        for i in range(1_000_000):
            if not self._playing:
                return
            action_type = ("COMPLETE_QUEST", "DEFEAT_BOSS")[i % 2]
            got = await self._call(
                "/api/v1/actions/initialize", user, {"actionType": action_type, "actionId": f"{user}-{i}"}
            )
            if got is None or got[0] != (200, None):
                if got is not None:
                    self.errors[got[0]] += 1
                await asyncio.sleep(RETRY_SECONDS)
                continue
            award = Award(user, action_type, got[1]["actionToken"])
            self.awards.append(award)
            await self._complete(award, f"{user}-{i}")

    async def _complete(self, award: Award, action_id: str) -> None:
        """Send the update until it gets an answer that is not a 5xx (bounded)."""
        deadline = time.monotonic() + 4 * DRAIN_SECONDS
        while time.monotonic() < deadline:
            got = await self._call(
                "/api/v1/scoreboard/update", award.user, {"actionToken": award.token, "actionId": action_id}
            )
            answer = None if got is None else got[0]
            award.answers.append(answer)
            if answer is None:
                self.unanswered += 1
            elif answer[0] >= 500:
                self.errors[answer] += 1
            else:
                return
            await asyncio.sleep(RETRY_SECONDS)

    async def _watch(self, viewer: Viewer) -> None:
        ws_url = self.url.replace("http", "ws") + WS
        while self._watching:
            try:
                ws = await self._http.ws_connect(ws_url)
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(RETRY_SECONDS)  # no process listens (the embedded restart)
                continue
            viewer.connects += 1
            try:
                await ws.send_json({"type": "subscribe", "channel": "leaderboard"})
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        continue
                    message = msg.json()
                    if message["type"] == "leaderboard_update":
                        entries = message["data"]["leaderboard"]
                        viewer.board = {e["userId"]: e["score"] for e in entries}
            except (aiohttp.ClientError, ConnectionResetError):
                pass
            finally:
                if self._watching:
                    viewer.closes.append((ws.close_code, self.rollout.restarts))
                await ws.close()
            await asyncio.sleep(random.uniform(0, RECONNECT_JITTER_SECONDS))

    async def finish_playing(self) -> None:
        """Stop starting awards; wait for those under way to get their answers."""
        self._playing = False
        await asyncio.wait_for(asyncio.gather(*self._players), 4 * DRAIN_SECONDS + REQUEST_SECONDS)

    async def settle(self, expected: dict[str, int]) -> list[int]:
        """Wait until every viewer shows `expected`; the viewers that never did."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline:
            if all(v.board == expected for v in self.viewers):
                return []
            await asyncio.sleep(0.1)
        return [i for i, v in enumerate(self.viewers) if v.board != expected]

    async def close(self) -> None:
        self._playing = self._watching = False
        for task in self._watchers + self._players:
            task.cancel()
        await asyncio.gather(*self._watchers, *self._players, return_exceptions=True)
        await self._http.close()


@pytest.fixture(params=["postgres+redis", "sqlite+redis", "embedded"])
def rollout(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rollout]:
    redis = request.param != "embedded"
    prefix = request.getfixturevalue("redis_prefix") if redis else "unused"
    dsn = schema_dsn(request.getfixturevalue("pg_schema")) if request.param == "postgres+redis" else ""
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(prefix=prefix))
    env = {
        "SCOREBOARD_ENV": "test",
        "SCOREBOARD_CONFIG": str(config),
        "SCOREBOARD_SQLITE_PATH": str(tmp_path / "scoreboard.db"),
        "SCOREBOARD_REDIS_URL": REDIS_URL if redis else "",
        "SCOREBOARD_DATABASE_URL": dsn,
        "SCOREBOARD_JWT_SECRET": JWT_SECRET.decode(),
        "SCOREBOARD_ACTION_SECRET": ACTION_SECRET.decode(),
    }
    rollout = Rollout(env, free_port(), share_port=redis)
    try:
        yield rollout
    finally:
        rollout.stop_all()


async def _ledger(rollout: Rollout) -> tuple[set[str], dict[str, int]]:
    """The nonces in score_history and each user's score, read from the system of record."""
    history_sql = "SELECT token_nonce FROM score_history"
    users_sql = "SELECT user_id, score FROM board_entries WHERE board = 'global' AND period = 'all'"
    if dsn := rollout.env["SCOREBOARD_DATABASE_URL"]:
        conn = await asyncpg.connect(dsn, timeout=REQUEST_SECONDS)
        try:
            nonces = {r[0] for r in await conn.fetch(history_sql)}
            scores = {r[0]: r[1] for r in await conn.fetch(users_sql)}
        finally:
            await conn.close()
    else:
        with contextlib.closing(sqlite3.connect(rollout.env["SCOREBOARD_SQLITE_PATH"])) as db:
            nonces = {r[0] for r in db.execute(history_sql)}
            scores = dict(db.execute(users_sql).fetchall())
    return nonces, {user: score for user, score in scores.items() if score}


async def test_rolling_restart_loses_no_award_and_every_viewer_ends_on_the_final_board(rollout: Rollout) -> None:
    count = 2 if rollout.share_port else 1
    rollout.servers = [await rollout.spawn().astart() for _ in range(count)]
    clients = Clients(rollout)
    try:
        await asyncio.sleep(PLAY_SECONDS)
        for index in (0, 1):  # one, then the other (the embedded one twice)
            await rollout.restart(index % count)
            await asyncio.sleep(PLAY_SECONDS)
        await clients.finish_playing()

        nonces, database = await _ledger(rollout)
        awards = clients.awards
        expected = Counter[str]()
        for award in awards:
            if award.acknowledged:
                expected[award.user] += SCORES[award.action_type]
        problems = []
        if lost := [a for a in awards if a.acknowledged and a.nonce not in nonces]:
            problems.append(f"{len(lost)} acknowledged awards are not in score_history: {lost}")
        ours = {a.nonce: a for a in awards}
        if stray := [n for n in nonces if n not in ours or not ours[n].acknowledged]:
            problems.append(f"{len(stray)} awards in score_history were never acknowledged")
        if unresolved := [a for a in awards if not a.answers or a.answers[-1] is None or a.answers[-1][0] >= 500]:
            problems.append(f"{len(unresolved)} updates never got an answer: {unresolved}")
        if not expected:
            problems.append("no award was acknowledged")
        if database != dict(expected):
            problems.append(f"database scores {database} != the acknowledged awards' {dict(expected)}")
        if clients.errors:
            problems.append(f"error answers during the restarts: {dict(clients.errors)}")
        for code, seconds in rollout.drains:
            if code != 0 or seconds > DRAIN_SECONDS + EXIT_SLACK_SECONDS:
                problems.append(f"a drain ended with {code} after {seconds:.1f} s")
        if bad := [c for v in clients.viewers for c in v.closes if c[0] != CLOSE_SERVICE_RESTART]:
            problems.append(f"viewers' connections ended otherwise than with 1012: {bad}")
        closed_by = Counter(restart for v in clients.viewers for _, restart in v.closes)
        if rollout.share_port and not (closed_by[1] and closed_by[2]):
            problems.append(f"a restart closed no viewer (closes by restart: {dict(closed_by)})")
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{rollout.port}/api/v1/scoreboard/top") as resp,
        ):
            top = {e["userId"]: e["score"] for e in (await resp.json())["data"]["leaderboard"]}
        if top != database:
            problems.append(f"GET /top {top} != database {database}")
        if behind := await clients.settle(database):
            problems.append(
                f"viewers {behind} did not end on the final board {database}: "
                f"{[clients.viewers[i].board for i in behind]}"
            )
        summary = (
            f"{len(awards)} awards ({sum(a.acknowledged for a in awards)} acknowledged, {clients.unanswered} "
            f"sends without an answer), {sum(v.connects for v in clients.viewers)} viewer connections, "
            f"closes by restart {dict(closed_by)}, drains {rollout.drains}"
        )
        assert not problems, summary + "\n" + "\n".join(problems) + "\n" + rollout.logs()
    finally:
        await clients.close()
