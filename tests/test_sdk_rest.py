"""The Python SDK (clients/python) against a real `run.py`: every REST route, the action flow in one
call, the exceptions of the error codes, a real 429 with its Retry-After, and a trusted write whose
answer is lost and retried with the same Idempotency-Key."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from scoreboard_client import (
    ActionAlreadyCompleted,
    ActionMismatch,
    ActionTooFast,
    AlreadyDecided,
    BoardExists,
    BoardInUse,
    BoardNotFound,
    Client,
    Disqualified,
    Forbidden,
    IdempotencyConflict,
    InvalidAction,
    InvalidToken,
    LeaderboardUpdate,
    NotAttested,
    NotFound,
    PeriodNotFound,
    RateLimited,
    ScoreboardError,
    TokenAlreadyUsed,
    Unauthorized,
    UnexpectedResponse,
    UserNotFound,
    ValidationError,
)
from scoreboard_client.models import BoardChange, BoardCreate, HeldData, Notification, UpdateData

from .boards.scene import ATTEST_KEY, RACER_KEY
from .contracts import eventually
from .real_servers import ServerProcess, free_port
from .sdk_server import SLOW_SECONDS, UPDATES_PER_MINUTE, Requests, running, token


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The module's running server."""
    yield from running(tmp_path_factory)


# The routes of the API: what the SDK covers. The others serve pages, the documents and probes.
API_TAGS = {"scoreboard", "boards", "trusted servers", "operators", "privacy"}


async def test_every_route_of_the_server(server: ServerProcess) -> None:
    requests = Requests()
    player, operator = token("tour-player"), token("tour-op", roles=("admin",))
    async with (
        requests.session() as session,
        Client(server.url, token=player, session=session) as client,
        Client(server.url, token=operator, service_key=RACER_KEY, session=session) as staff,
        Client(server.url, token=token("tour-racer"), session=session) as racer,
        Client(server.url, service_key=ATTEST_KEY, session=session) as referee,
        Client(server.url, token=token("tour-hoarder"), session=session) as hoarder,
    ):
        boards = await client.boards()
        assert [b.id for b in boards.boards] == ["global", "weekly", "trial"]
        catalog = {a.type: (a.score, a.boards) for a in (await client.actions()).actions}
        assert catalog["COMPLETE_QUEST"] == (100, ["global", "weekly"])
        trial = await client.board("trial")
        assert (trial.order, trial.operator, trial.format, trial.period.id) == ("asc", "best", "duration_ms", "all")

        created = await staff.create_board(BoardCreate(id="tour", title="Tour"))
        assert (created.id, created.title, created.entries, created.operator) == ("tour", "Tour", 0, "incr")
        for user, score in (("ann", 30), ("bob", 20), ("cid", 10), ("dee", 40)):
            written = await staff.write_score("tour", user, score, metadata={"lap": 1} if user == "dee" else None)
            assert (written.user_id, written.new_score, written.previous_score, written.improved) == (
                user,
                score,
                None,
                True,
            )
        top = await client.board_top("tour", limit=2)
        assert [(e.user_id, e.score, e.rank) for e in top.leaderboard] == [("dee", 40, 1), ("ann", 30, 2)]
        assert top.leaderboard[0].metadata == {"lap": 1} and top.period == "all"
        page = await client.ranks("tour", from_=2, limit=2)
        assert ([e.user_id for e in page.leaderboard], page.total) == (["ann", "bob"], 4)
        around = await client.around("tour", "bob", radius=1)
        assert (around.rank, [e.user_id for e in around.entries]) == (3, ["ann", "bob", "cid"])
        nowhere = await client.around("tour", "nobody")
        assert (nowhere.rank, nowhere.entries) == (None, [])
        friends = await client.lookup("tour", ["cid", "ann", "zed"])
        assert [(e.user_id, e.rank) for e in friends.entries] == [("ann", 2), ("cid", 4)]
        periods = await client.periods("tour")
        assert [(p.id, p.entries, p.starts_at) for p in periods.periods] == [("all", 4, None)]
        changed = await staff.change_board("tour", BoardChange(title="The tour", keep_periods=3))
        assert (changed.title, changed.keep_periods, changed.entries) == ("The tour", 3, 4)
        async with contextlib.aclosing(client.events("tour", last_event_id=6)) as events:
            event_id, snapshot = await anext(events)
            assert event_id == 7 and isinstance(snapshot, LeaderboardUpdate)
            assert (snapshot.data.seq, [e.user_id for e in snapshot.data.leaderboard][:2]) == (7, ["dee", "ann"])
        with pytest.raises(BoardNotFound):
            await anext(client.events("nope"))

        award = await client.complete("COMPLETE_QUEST", "tour-q1")
        assert isinstance(award, UpdateData)
        assert (award.user_id, award.previous_score, award.new_score, award.score_increment) == (
            "tour-player",
            0,
            100,
            100,
        )
        assert sorted((b.board, b.new_score) for b in award.boards) == [("global", 100), ("weekly", 100)]
        started = await client.initialize("COMPLETE_QUEST", "tour-q2")
        assert started.expected_score == 100 and started.expires_at.endswith("Z")
        second = await client.update(started.action_token, "tour-q2")
        assert isinstance(second, UpdateData)
        assert (second.previous_score, second.new_score) == (100, 200)
        mine = await client.user_score("tour-player")
        assert (mine.user_id, mine.username, mine.score, mine.rank) == ("tour-player", "Tour-Player", 200, second.rank)
        standings = await client.user_boards("tour-player")
        assert sorted((b.board, b.score) for b in standings.boards) == [("global", 200), ("weekly", 200)]
        default_top = await client.top(limit=100)
        assert ("tour-player", 200) in [(e.user_id, e.score) for e in default_top.leaderboard]

        # An action a game server must attest: refused until it has, then the same token awards
        # (another player: the update limit is per user).
        race = await racer.initialize("WIN_RACE", "tour-race")
        with pytest.raises(NotAttested):
            await racer.update(race.action_token, "tour-race")
        attested = await referee.attest("tour-race", "tour-racer")
        assert (attested.action_id, attested.user_id) == ("tour-race", "tour-racer")
        assert attested.attested_at.endswith("Z")
        assert await referee.attest("tour-race", "tour-racer") == attested  # idempotent: the first one held
        won = await racer.update(race.action_token, "tour-race")
        assert isinstance(won, UpdateData)
        assert (won.user_id, won.previous_score, won.new_score) == ("tour-racer", 0, 250)

        # Every OPEN_CHEST is held (hold_over_per_hour = 0): a 202 the SDK answers as HeldData, listed
        # for operators, who decide each once.
        chests = [await hoarder.complete("OPEN_CHEST", f"tour-chest-{i}") for i in (1, 2)]
        assert all(isinstance(c, HeldData) and c.status == "held" and c.score_increment == 10 for c in chests)
        ids = [c.id for c in chests if isinstance(c, HeldData)]
        pending = await staff.held()
        assert ([h.id for h in pending.held], pending.next_after) == (ids, None)
        approved = await staff.approve_held(ids[0], "looked fine")
        assert (approved.status, approved.decided_by, [(b.board, b.new_score) for b in approved.landed]) == (
            "approved",
            "tour-op",
            [("global", 10)],
        )
        rejected = await staff.reject_held(ids[1], "too many chests")
        assert (rejected.status, rejected.reason, rejected.landed) == ("rejected", "too many chests", [])
        with pytest.raises(AlreadyDecided):
            await staff.approve_held(ids[1], "again")
        with pytest.raises(NotFound):
            await staff.reject_held(10**9, "nobody")
        assert [h.id for h in (await staff.held(status="approved", limit=1)).held] == ids[:1]

        # Moderation: a disqualified player's writes raise Disqualified until reinstated, and every
        # act is in their history.
        out = await staff.disqualify("tour-racer", "bot")
        assert (out.disqualified, out.act.action, out.act.operator) == (True, "disqualify", "tour-op")
        with pytest.raises(Disqualified):
            await racer.initialize("COMPLETE_QUEST", "tour-banned")
        assert (await staff.reinstate("tour-racer", "appeal")).disqualified is False
        fixed = await staff.adjust("global", "tour-racer", -50, "refund")
        assert (fixed.previous_score, fixed.new_score, fixed.act.amount) == (250, 200, -50)
        removed = await staff.remove_entry("tour", "current", "bob", "exploit")
        assert (removed.removed_score, removed.act.action) == (20, "remove")
        wiped = await staff.wipe_period("tour", "all", "broken build")
        assert wiped.removed == 3 and {e["userId"] for e in (wiped.act.details or {})["removed"]} == {
            "ann",
            "cid",
            "dee",
        }
        history = await staff.user_history("tour-racer", limit=1)
        assert [h.kind for h in history.history] == ["correction"] and history.next_after is not None
        assert [a.action for a in history.acts] == ["adjust", "reinstate", "disqualify"]
        await staff.write_score("tour", "ann", 30)  # the tour board again, for the notices below
        await staff.write_score("tour", "bob", 20)
        await staff.write_score("tour", "cid", 10)
        await staff.write_score("tour", "dee", 40)

        # A user passed on a board is told, and the notice kept for them.
        await staff.write_score("tour", "tour-player", 1)
        await staff.write_score("tour", "zed", 0)  # a first entry passes nobody
        await staff.write_score("tour", "zed", 100)  # rank 6 -> 1: passes the player, at rank 5
        notices = await eventually(lambda: _notified(client))
        assert [(n.type, n.data.by.user_id, n.data.previous_rank, n.data.new_rank) for n in notices] == [
            ("overtaken", "zed", 5, 6)
        ]
        assert (await client.notifications(after=notices[-1].id)).notifications == []

        # Personal data: the export holds the player's awards; erasures, by the player and by an operator.
        kept = await client.export()
        assert kept.user is not None and kept.user.user_id == "tour-player"
        assert {a.action_id for a in kept.awards} >= {"tour-q1", "tour-q2"} and kept.decisions == []
        assert (await staff.erase_user("cid")).erased
        with pytest.raises(UserNotFound):
            await staff.erase_user("cid")

        assert (await staff.retire_board("tour")).retired
        with pytest.raises(BoardNotFound):
            await client.board("tour")

        assert (await client.erase_me()).erased
        with pytest.raises(UserNotFound):
            await client.export()

        # Every operation of the API the server documents was called through the SDK.
        async with session.get(server.url + "/api/openapi.json") as answer:
            doc = await answer.json()
    operations = [
        (method.upper(), path)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if set(op["tags"]) & API_TAGS
    ]
    assert len(operations) >= 16  # the tags still name the API's operations
    assert [op for op in operations if not requests.count(*op)] == []


async def _notified(client: Client) -> list[Notification]:
    notices = (await client.notifications()).notifications
    assert notices
    return notices


async def test_ids_are_path_segments(server: ServerProcess) -> None:
    # An id may be `..` or hold a colon: it stays one segment of the path.
    async with Client(server.url, token=token("seg-reader"), service_key=RACER_KEY) as client:
        for user in ("..", "a:b.c"):
            await client.write_score("trial", user, 5000)
            around = await client.around("trial", user, radius=0)
            assert [e.user_id for e in around.entries] == [user]
            assert (await client.user_boards(user)).boards[0].board == "trial"


Case = tuple[str, Callable[[Client], Awaitable[Any]], type[ScoreboardError], int, str]


async def _action_token(client: Client, action_id: str, action_type: str = "COMPLETE_QUEST") -> str:
    return (await client.initialize(action_type, action_id)).action_token


async def _used_token(client: Client) -> Any:
    used = await _action_token(client, "used-1")
    await client.update(used, "used-1")
    return await client.update(used, "used-1")


async def _completed_twice(client: Client) -> Any:
    await client.complete("COMPLETE_QUEST", "twice-1")
    return await client.initialize("COMPLETE_QUEST", "twice-1")


async def _conflicting_write(client: Client) -> Any:
    await client.write_score("trial", "conflict", 900, idempotency_key="race-1")
    assert (await client.write_score("trial", "conflict", 900, idempotency_key="race-1")).new_score == 900
    return await client.write_score("trial", "conflict", 800, idempotency_key="race-1")


async def _mismatch(client: Client) -> Any:
    return await client.update(await _action_token(client, "m1"), "m2")


async def _too_fast(client: Client) -> Any:
    return await client.update(await _action_token(client, "f1", "SLOW_PUZZLE"), "f1")


CASES: list[Case] = [
    ("unknown user", lambda c: c.user_score("ghost"), UserNotFound, 404, "USER_NOT_FOUND"),
    ("unknown board", lambda c: c.board_top("nope"), BoardNotFound, 404, "BOARD_NOT_FOUND"),
    ("unknown period", lambda c: c.board_top("weekly", period="2020-W01"), PeriodNotFound, 404, "PERIOD_NOT_FOUND"),
    ("limit over 100", lambda c: c.ranks("global", limit=500), ValidationError, 400, "VALIDATION_ERROR"),
    ("bad board id", lambda c: c.lookup("Not A Board", ["x"]), ValidationError, 400, "VALIDATION_ERROR"),
    ("unknown action", lambda c: c.initialize("NOPE", "n1"), InvalidAction, 400, "INVALID_ACTION"),
    ("another user's action", lambda c: c.initialize("COMPLETE_QUEST", "o1", user_id="x"), Forbidden, 403, "FORBIDDEN"),
    ("garbage action token", lambda c: c.update("not-a-token", "g1"), InvalidToken, 401, "INVALID_TOKEN"),
    ("token of another action", _mismatch, ActionMismatch, 400, "ACTION_MISMATCH"),
    ("too fast", _too_fast, ActionTooFast, 400, "ACTION_TOO_FAST"),
    ("token used twice", _used_token, TokenAlreadyUsed, 409, "TOKEN_ALREADY_USED"),
    ("action completed twice", _completed_twice, ActionAlreadyCompleted, 409, "ACTION_ALREADY_COMPLETED"),
    ("action not attested", lambda c: c.complete("WIN_RACE", "race-1"), NotAttested, 409, "NOT_ATTESTED"),
    ("attest without the scope", lambda c: c.attest("race-1", "someone"), Forbidden, 403, "FORBIDDEN"),
    ("key reused with another body", _conflicting_write, IdempotencyConflict, 409, "IDEMPOTENCY_CONFLICT"),
    ("board exists", lambda c: c.create_board(BoardCreate(id="global")), BoardExists, 409, "BOARD_EXISTS"),
    ("default board retired", lambda c: c.retire_board("global"), BoardInUse, 409, "BOARD_IN_USE"),
]


@pytest.mark.parametrize(("name", "call", "error", "status", "code"), CASES, ids=[c[0] for c in CASES])
async def test_error_codes_raise_their_exceptions(
    server: ServerProcess,
    name: str,
    call: Callable[[Client], Awaitable[Any]],
    error: type[ScoreboardError],
    status: int,
    code: str,
) -> None:
    user = f"err-{uuid.uuid4().hex[:8]}"  # each case its own user: the update limit is per user
    async with Client(server.url, token=token(user, roles=("admin",)), service_key=RACER_KEY) as client:
        with pytest.raises(error) as caught:
            await call(client)
    assert (type(caught.value), caught.value.status, caught.value.code) == (error, status, code)
    assert caught.value.message
    if error is ActionTooFast:
        assert caught.value.min_seconds == SLOW_SECONDS  # type: ignore[attr-defined]


async def test_credentials_refused(server: ServerProcess) -> None:
    async with Client(server.url) as anonymous, Client(server.url, token="not-a-jwt") as forged:
        for client in (anonymous, forged):
            with pytest.raises(Unauthorized) as caught:
                await client.user_score("someone")
            assert (caught.value.status, caught.value.code) == (401, "UNAUTHORIZED")
            with pytest.raises(Unauthorized):
                await client.write_score("trial", "someone", 1)
    # A user's JWT is no service key, and a user without the operator's role is no operator.
    async with Client(server.url, token=token("plain"), service_key=token("plain")) as plain:
        with pytest.raises(Unauthorized):
            await plain.write_score("trial", "someone", 1)
        with pytest.raises(Forbidden):
            await plain.create_board(BoardCreate(id="mine"))


async def test_rate_limited_carries_retry_after(server: ServerProcess) -> None:
    async with Client(server.url, token=token("hasty")) as client:
        for n in range(UPDATES_PER_MINUTE):  # every update counts, refused ones too
            with pytest.raises(InvalidToken):
                await client.update("not-a-token", f"h{n}")
        with pytest.raises(RateLimited) as caught:
            await client.update("not-a-token", "h-last")
    limited = caught.value
    assert (limited.status, limited.code) == (429, "RATE_LIMITED")
    assert limited.retry_after is not None and 1 <= limited.retry_after <= 60
    assert limited.retry_after == int(limited.retry_after)  # Retry-After is whole seconds


async def test_complete_waits_out_the_minimum_duration(server: ServerProcess) -> None:
    requests = Requests()
    async with requests.session() as session, Client(server.url, token=token("slowpoke"), session=session) as client:
        began = time.monotonic()
        first = await client.complete("SLOW_PUZZLE", "p1")
        assert isinstance(first, UpdateData)
        assert time.monotonic() - began >= SLOW_SECONDS
        assert (first.score_increment, first.new_score) == (50, 50)
        # The server refused the first update as too fast, the second went through.
        assert requests.count("POST", "/api/v1/scoreboard/update") == 2
        began = time.monotonic()
        second = await client.complete("SLOW_PUZZLE", "p2")
        assert isinstance(second, UpdateData)
        assert time.monotonic() - began >= SLOW_SECONDS
        assert second.new_score == 100
        # Learned: this time it waited before its one update.
        assert requests.count("POST", "/api/v1/scoreboard/update") == 3


class AnswerCutter:
    """A TCP proxy to the server that cuts the first connection as the server's answer arrives:
    the server did the request, the client never hears of it."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> AnswerCutter:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        cut = self.connections == 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, cutting: bool) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if cutting:
                        writer.transport.abort()  # the answer is here: the client gets none of it
                        break
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer, cutting=False), pipe(up_reader, writer, cutting=cut))
        finally:
            up_writer.transport.abort()
            self._tasks.discard(task)


async def test_a_trusted_write_is_retried_with_its_idempotency_key(server: ServerProcess) -> None:
    async with (
        AnswerCutter(server.port) as proxy,
        Client(f"http://127.0.0.1:{proxy.port}", service_key=RACER_KEY, backoff_base=0.01) as client,
    ):
        written = await client.write_score("global", "retried", 7)
        assert proxy.connections == 2  # the first answer was cut, the retry was answered
    # The retry carried the first attempt's key: the server answered the first answer again (on an
    # incr board a second write would have made 14).
    assert (written.previous_score, written.new_score) == (None, 7)
    async with Client(server.url) as reader:
        around = await reader.around("global", "retried", radius=0)
    assert [(e.user_id, e.score) for e in around.entries] == [("retried", 7)]


async def test_connection_failures_give_up_after_the_retries() -> None:
    requests = Requests()
    async with (
        requests.session() as session,
        Client(f"http://127.0.0.1:{free_port()}", session=session, retries=2, backoff_base=0.01) as client,
    ):
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.boards()
    assert len(requests.sent) == 3


async def test_an_answer_that_is_not_the_apis(aiohttp_server: Any) -> None:
    # Whatever answers in front of the server (a proxy's error page) or instead of it.
    async def bad_gateway(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html")

    async def not_an_envelope(request: web.Request) -> web.Response:
        return web.json_response({"boards": []})

    app = web.Application()
    app.router.add_get("/api/v1/boards", not_an_envelope)
    app.router.add_get("/api/v1/boards/{board}", bad_gateway)
    stub = await aiohttp_server(app)
    async with Client(str(stub.make_url(""))) as client:
        with pytest.raises(UnexpectedResponse) as caught:
            await client.board("global")
        assert (caught.value.status, caught.value.code) == (502, "UNEXPECTED_RESPONSE")
        assert "Bad Gateway" in caught.value.message
        with pytest.raises(UnexpectedResponse) as caught:
            await client.boards()
        assert caught.value.status == 200


async def test_a_dropped_connection_sends_each_request_as_often_as_documented(aiohttp_server: Any) -> None:
    # aiohttp by itself sends a GET or DELETE again after a disconnect; counted here by the server.
    sent: list[tuple[str, str]] = []

    async def drop(request: web.Request) -> web.Response:
        sent.append((request.method, request.path))
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(0.1)
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", drop)
    stub = await aiohttp_server(app)
    url = str(stub.make_url(""))
    for retries in (0, 2):
        async with Client(url, token=token("op", roles=("admin",)), retries=retries, backoff_base=0.01) as client:
            with pytest.raises(aiohttp.ClientConnectionError):
                await client.top()
            assert sent.count(("GET", "/api/v1/scoreboard/top")) == 1 + retries
            for erase in (client.retire_board("cup"), client.erase_me(), client.erase_user("bob")):
                with pytest.raises(aiohttp.ClientConnectionError):
                    await erase  # never retried: a second one could not tell whether the first counted
            assert [m for m, _ in sent].count("DELETE") == 3
        sent.clear()
    async with aiohttp.ClientSession() as given, Client(url, session=given, retries=0) as client:
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.boards()
    assert sent == [("GET", "/api/v1/boards")]
