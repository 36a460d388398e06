"""A crash burns no token: `kill -9` a real server mid-award, restart it, retry what got no answer.

The contract: `409 TOKEN_ALREADY_USED` means the award is committed, so a retry after a crash
either awards once or says it already landed. The database is the truth: whatever the Redis
gate remembers of an attempt that died before its commit must never refuse the retry, and the
board read through the API must end where the database is. Run in every set-up: embedded
(SQLite alone), SQLite + Redis and PostgreSQL + Redis, each with real server processes.

Where the kill lands depends on timing, so timing decides whether a run finds the window
between a claim and its commit; no outcome asserted here depends on it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import random
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest

from app.auth import UserAuth

from .conftest import ACTION_SECRET, JWT_SECRET
from .isolation import REDIS_URL, schema_dsn
from .real_servers import PROCESS_CONFIG, PROCESS_SCORES, ServerProcess, run_py

CONFIG = PROCESS_CONFIG
SCORES = PROCESS_SCORES
USERS = ("ann", "ben", "cat", "dan")
BURST = 20  # updates in a crash burst
STREAM_SECONDS = 0.001  # the crash burst's updates are this far apart
ROUNDS = 3  # crashes in the loop
PLAYERS = 8  # concurrent players in the loop, two per user
REQUEST_SECONDS = 10.0  # every request's bound
SETTLE_SECONDS = 3.0  # how long the board may take to reach the database after a restart
STALL_SECONDS = 1.0  # with the database held, time for every update to reach the server

Answer = tuple[int, str | None]  # status and error code; None where a request got no answer
ALREADY_USED: Answer = (409, "TOKEN_ALREADY_USED")
OK: Answer = (200, None)


@dataclass
class Award:
    """One action token and what became of its update."""

    user: str
    action_id: str
    action_type: str
    token: str
    first: Answer | None = None  # the update's answer before the crash
    retried: bool = False
    retry: Answer | None = None  # the same update's answer after the restart

    @functools.cached_property
    def nonce(self) -> str:
        payload = self.token.split(".")[1]
        claims: dict[str, Any] = msgspec.json.decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        nonce: str = claims["nonce"]
        return nonce

    @property
    def increment(self) -> int:
        return SCORES[self.action_type]

    @property
    def acknowledged(self) -> bool:
        """Answered 200, or 409 TOKEN_ALREADY_USED on retry: the contract says it is committed."""
        return self.first == OK or self.retry in (OK, ALREADY_USED)

    def needs_retry(self) -> bool:
        """No answer, or one that promised nothing (5xx)."""
        return self.first is None or self.first[0] >= 500

    def __str__(self) -> str:
        return f"{self.user}/{self.action_id} (+{self.increment}, first={self.first}, retry={self.retry})"


@dataclass
class Ledger:
    """What the database committed: score_history by nonce, and each user's entry on the default board."""

    history: dict[str, tuple[str, int]]  # nonce -> (user id, score change)
    scores: dict[str, int]

    def history_sums(self) -> dict[str, int]:
        sums: Counter[str] = Counter()
        for user, change in self.history.values():
            sums[user] += change
        return dict(sums)


@dataclass
class Deployment:
    """One set-up's environment for `run.py`, and direct access to its system of record."""

    name: str
    env: dict[str, str]
    sqlite_path: Path
    dsn: str | None
    servers: list[ServerProcess] = field(default_factory=list)

    def start(self) -> ServerProcess:
        server = run_py(self.env)
        self.servers.append(server)
        return server.start()

    async def ledger(self) -> Ledger:
        history_sql = "SELECT token_nonce, user_id, score_change FROM score_history"
        users_sql = "SELECT user_id, score FROM board_entries WHERE board = 'global' AND period = 'all'"
        if self.dsn:
            conn = await asyncpg.connect(self.dsn, timeout=REQUEST_SECONDS)
            try:
                history = [tuple(r) for r in await conn.fetch(history_sql, timeout=REQUEST_SECONDS)]
                users = [tuple(r) for r in await conn.fetch(users_sql, timeout=REQUEST_SECONDS)]
            finally:
                await conn.close()
        else:
            with contextlib.closing(sqlite3.connect(self.sqlite_path)) as db:
                history = db.execute(history_sql).fetchall()
                users = db.execute(users_sql).fetchall()
        return Ledger(history={n: (u, c) for n, u, c in history}, scores={u: s for u, s in users})

    @contextlib.asynccontextmanager
    async def stalled(self) -> AsyncIterator[None]:
        """Hold the database's write lock: every award reaches the server and none can commit."""
        if self.dsn:
            conn = await asyncpg.connect(self.dsn, timeout=REQUEST_SECONDS)
            try:
                async with conn.transaction():
                    lock = "LOCK TABLE users, action_tokens, score_history, board_entries, board_history IN SHARE MODE"
                    await conn.execute(lock, timeout=REQUEST_SECONDS)
                    yield
            finally:
                await conn.close()
        else:
            db = sqlite3.connect(self.sqlite_path, timeout=REQUEST_SECONDS, isolation_level=None)
            try:
                db.execute("BEGIN IMMEDIATE")
                yield
            finally:
                db.close()  # rolls back

    def stop_all(self) -> None:
        for server in self.servers:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()


@pytest.fixture(params=["embedded", "sqlite+redis", "postgres+redis"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    redis = request.param != "embedded"
    prefix = request.getfixturevalue("redis_prefix") if redis else "unused"
    dsn = schema_dsn(request.getfixturevalue("pg_schema")) if request.param == "postgres+redis" else None
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(prefix=prefix))
    env = {
        "SCOREBOARD_ENV": "test",
        "SCOREBOARD_CONFIG": str(config),
        "SCOREBOARD_SQLITE_PATH": str(tmp_path / "scoreboard.db"),
        "SCOREBOARD_REDIS_URL": REDIS_URL if redis else "",
        "SCOREBOARD_DATABASE_URL": dsn or "",
        "SCOREBOARD_JWT_SECRET": JWT_SECRET.decode(),
        "SCOREBOARD_ACTION_SECRET": ACTION_SECRET.decode(),
    }
    deployment = Deployment(request.param, env, tmp_path / "scoreboard.db", dsn)
    try:
        yield deployment
    finally:
        deployment.stop_all()


_AUTH = UserAuth(JWT_SECRET)
_HEADERS = {user: {"Authorization": f"Bearer {_AUTH.issue(user, name=user.title())}"} for user in USERS}


class Api:
    """A player's view of one server process; a request the crash cut off is None, not an error."""

    def __init__(self, server: ServerProcess) -> None:
        self.url = server.url
        self.http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=REQUEST_SECONDS),
            connector=aiohttp.TCPConnector(limit=0),  # a POST is never resent by aiohttp
        )

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()

    async def _call(self, method: str, path: str, user: str, body: Any = None) -> tuple[Answer, Any] | None:
        try:
            async with self.http.request(method, self.url + path, json=body, headers=_HEADERS[user]) as resp:
                data = msgspec.json.decode(await resp.read())
        except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError):
            return None
        code = None if data.get("success") else data.get("error", {}).get("code")
        return (resp.status, code), data.get("data")

    async def initialize(self, user: str, action_id: str, action_type: str) -> Award | Answer | None:
        """A token, or the refusal, or None if the server is gone."""
        result = await self._call(
            "POST", "/api/v1/actions/initialize", user, {"actionType": action_type, "actionId": action_id}
        )
        if result is None or result[0] != OK:
            return None if result is None else result[0]
        return Award(user, action_id, action_type, result[1]["actionToken"])

    async def update(self, award: Award) -> Answer | None:
        body = {"actionToken": award.token, "actionId": award.action_id}
        result = await self._call("POST", "/api/v1/scoreboard/update", award.user, body)
        return None if result is None else result[0]

    async def scores(self, users: Iterable[str]) -> dict[str, int | None]:
        """Each user's score as the API reads it (in the Redis modes: the Redis board)."""
        out: dict[str, int | None] = {}
        for user in users:
            result = await self._call("GET", f"/api/v1/users/{user}/score", user)
            out[user] = result[1]["score"] if result is not None and result[0] == OK else None
        return out


async def _settle(tasks: list[asyncio.Task[Any]]) -> None:
    """Wait, bounded, for requests the crash cut off; any still hanging is cancelled."""
    _, pending = await asyncio.wait(tasks, timeout=REQUEST_SECONDS + 5)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _retry(server: ServerProcess, awards: list[Award]) -> None:
    """After the restart: send every update that got no answer again, same token and body."""
    again = [a for a in awards if a.needs_retry() and not a.retried]
    async with Api(server) as api:
        answers = await asyncio.gather(*(api.update(a) for a in again))
    for award, answer in zip(again, answers, strict=True):
        award.retried, award.retry = True, answer


def _expected(awards: list[Award]) -> dict[str, int]:
    sums: Counter[str] = Counter()
    for award in awards:
        if award.acknowledged:
            sums[award.user] += award.increment
    return {user: sums[user] for user in USERS}


async def _board_scores(server: ServerProcess, expected: dict[str, int]) -> dict[str, int | None]:
    """The API's scores, given a few seconds to reach the database's after the restart."""
    async with Api(server) as api:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_SECONDS
        while (scores := await api.scores(USERS)) != expected and loop.time() < deadline:
            await asyncio.sleep(0.2)
    return scores


async def _problems(deployment: Deployment, server: ServerProcess, awards: list[Award]) -> list[str]:
    """Every broken promise, each on its own line (an empty list: the crash cost nothing)."""
    ledger = await deployment.ledger()
    retried = [a for a in awards if a.retried]
    problems = []
    if bad := [str(a) for a in retried if a.retry not in (OK, ALREADY_USED)]:
        problems.append(f"{len(bad)} retries after the crash answered neither 200 nor 409 TOKEN_ALREADY_USED: {bad}")
    if burned := [str(a) for a in retried if a.retry == ALREADY_USED and a.nonce not in ledger.history]:
        problems.append(
            f"{len(burned)} of {len(retried)} retries answered 409 TOKEN_ALREADY_USED for a token whose award "
            f"was never committed (burned by the crash): {burned}"
        )
    if odd := [str(a) for a in awards if not a.retried and a.first != OK]:
        problems.append(f"{len(odd)} updates neither answered 200 nor retried: {odd}")
    if missing := [str(a) for a in awards if OK in (a.first, a.retry) and a.nonce not in ledger.history]:
        problems.append(f"{len(missing)} awards answered 200 are not in score_history: {missing}")
    ours = {a.nonce: a for a in awards}
    if unacknowledged := [str(ours.get(n, n)) for n in ledger.history if n not in ours or not ours[n].acknowledged]:
        problems.append(f"{len(unacknowledged)} awards in score_history were never acknowledged: {unacknowledged}")
    expected = _expected(awards)
    database = {user: ledger.scores.get(user, 0) for user in USERS}
    if database != expected:
        short = sum(expected.values()) - sum(database.values())
        problems.append(
            f"database board_entries {database} != sum of acknowledged awards {expected} ({short} points short)"
        )
    sums = ledger.history_sums()
    if any(sums.get(user, 0) != ledger.scores.get(user, 0) for user in {*sums, *ledger.scores}):
        problems.append(f"sum of score_history {sums} != board_entries {ledger.scores}")
    board = await _board_scores(server, expected)
    if board != expected:
        problems.append(
            f"API scores {board} != sum of acknowledged awards {expected} (database has {database}) "
            f"in {deployment.name}"
        )
    return problems


async def _issue(server: ServerProcess, count: int, tag: str) -> list[Award]:
    awards = []
    async with Api(server) as api:
        for i in range(count):
            action_type = ("COMPLETE_QUEST", "DEFEAT_BOSS")[(i // len(USERS)) % 2]
            award = await api.initialize(USERS[i % len(USERS)], f"{tag}-{i}", action_type)
            assert isinstance(award, Award), award
            awards.append(award)
    return awards


async def _burst(deployment: Deployment, *, stall: bool) -> None:
    """BURST updates, kill -9 while they are in flight, restart, retry the unanswered.

    A first burst, answered in full, warms the server up. Sent all at once, the crash burst
    would commit in one or two batches before the first answer reaches the client, and the kill
    would find nothing in flight; sent as a stream, the first answer comes while later updates
    have passed the gate and wait for the next batch or their transaction."""
    server = deployment.start()
    warm, awards = await _issue(server, BURST, "warm"), await _issue(server, BURST, "burst")
    async with Api(server) as api:

        async def submit(award: Award) -> None:
            award.first = await api.update(award)

        await _settle([asyncio.create_task(submit(a)) for a in warm])
        hold: contextlib.AbstractAsyncContextManager[None] = deployment.stalled() if stall else contextlib.nullcontext()
        async with hold:
            tasks = []
            for award in awards:
                tasks.append(asyncio.create_task(submit(award)))
                if not stall:
                    await asyncio.sleep(STREAM_SECONDS)
            if stall:
                await asyncio.wait(tasks, timeout=STALL_SECONDS)
            else:
                await asyncio.wait(tasks, timeout=REQUEST_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            server.kill()
        await _settle(tasks)
    cut = sum(a.needs_retry() for a in awards)
    server = deployment.start()
    await _retry(server, awards)
    problems = await _problems(deployment, server, warm + awards)
    assert not problems, f"{deployment.name}, {cut} of {BURST} updates cut off by kill -9:\n" + "\n".join(problems)


async def test_kill_9_amid_a_burst_burns_no_token(deployment: Deployment) -> None:
    """Killed at the first answer of the stream, as a crash would find them: some updates
    committed, some past the gate and waiting for their commit, some not yet read."""
    await _burst(deployment, stall=False)


async def test_kill_9_with_every_update_in_flight_burns_no_token(deployment: Deployment) -> None:
    """The database is held, so every update passes the gate and none can commit: the kill lands
    where a claim outlives its transaction, every time."""
    await _burst(deployment, stall=True)


async def _play(api: Api, user: str, tag: str, awards: list[Award]) -> None:
    """initialize, then update, until the server is gone."""
    for i in range(100_000):
        got = await api.initialize(user, f"{tag}-{i}", ("COMPLETE_QUEST", "DEFEAT_BOSS")[i % 2])
        if got is None:
            return  # the crash
        if not isinstance(got, Award):  # refused (a limit): wait and go on
            await asyncio.sleep(0.05)
            continue
        awards.append(got)
        got.first = await api.update(got)
        if got.first is None:
            return


async def test_kill_9_in_a_loop_loses_no_acknowledged_award(deployment: Deployment) -> None:
    """ROUNDS times: players award for 1-3 s, kill -9, restart, retry what got no answer. Each
    acknowledged award counts exactly once, in the database and on the board."""
    awards: list[Award] = []
    rounds = []
    server = deployment.start()
    for round_ in range(ROUNDS):
        async with Api(server) as api:
            players = [
                asyncio.create_task(_play(api, USERS[p % len(USERS)], f"r{round_}p{p}", awards)) for p in range(PLAYERS)
            ]
            seconds = random.uniform(1.0, 3.0)
            await asyncio.wait(players, timeout=seconds)
            server.kill()
            await _settle(players)
        cut = [a for a in awards if a.needs_retry() and not a.retried]
        answered = sum(a.first == OK for a in awards if a.action_id.startswith(f"r{round_}p"))
        rounds.append(f"{seconds:.1f} s, {answered} answered 200, {len(cut)} cut off")
        assert answered, f"round {round_}: no award was answered before the crash ({rounds})"
        server = deployment.start()
        await _retry(server, cut)
    problems = await _problems(deployment, server, awards)
    assert not problems, (
        f"{deployment.name}, {len(awards)} updates in {ROUNDS} rounds ({'; '.join(rounds)}):\n" + "\n".join(problems)
    )
