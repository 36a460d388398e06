"""Overtakes in every storage set-up: `overtaken` to each user another user's write passed (at most
the 100 nearest, on all the write's boards together), kept for them (GET /users/me/notifications, `after`), replayed on the
notifications channel, each once per connection, and across processes in the Redis modes."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import pytest

from app import overtakes as overtakes_module
from app.api.keys import OVERTAKES
from app.errors import ServiceUnavailable
from app.overtakes import overtake_of

from ..conftest import Flow, envelope
from ..live_client import WS, recv, recv_type, token_for
from .scene import AppClient, Boards, Clock, app_with_clock, boards_config

NOTIFICATIONS = "/api/v1/users/me/notifications"


async def _user(client: AppClient, user: str) -> Any:
    """A connection of `user`, greeted."""
    ws = await client.ws_connect(f"{WS}?token={token_for(user)}")
    assert (await recv(ws))["type"] == "connected"
    return ws


async def _no_more_notices(ws: Any) -> None:
    """No notice is queued for the connection: none comes before the answer to a ping."""
    await ws.send_json({"type": "ping"})
    while (message := await recv(ws))["type"] != "pong":
        assert message["type"] != "overtaken", message


async def _kept(client: AppClient, user: str, status: int = 200, **params: Any) -> Any:
    resp = await client.get(NOTIFICATIONS, params=params, headers={"Authorization": f"Bearer {token_for(user)}"})
    body = await envelope(resp)
    assert resp.status == status, body
    return body["data"]["notifications"] if body["success"] else body["error"]


async def _all_told(client: AppClient) -> None:
    await client.app[OVERTAKES].finished()


def _overtake(user: str, by: str, score: int, previous: int, new: int, board: str = "high") -> dict[str, Any]:
    return {
        "board": board,
        "period": "all",
        "userId": user,
        "by": {"userId": by, "username": by, "score": score},
        "previousRank": previous,
        "newRank": new,
    }


async def test_a_pass_tells_each_user_passed_live_and_keeps_it(client: AppClient, bearer: Any) -> None:
    boards = Boards(client, bearer)
    for user, score in (("a", 300), ("b", 200), ("c", 100)):
        await boards.write("high", {"userId": user, "score": score}, key=f"k-{user}")
    a, b, c, d = [await _user(client, u) for u in "abcd"]
    await boards.write("high", {"userId": "d", "score": 50}, key="d1")  # a first entry passes nobody
    await _all_told(client)
    assert await _kept(client, "c") == []

    await boards.write("high", {"userId": "d", "score": 250}, key="d2")  # rank 4 -> 2: passes c and b
    told_b = await recv_type(b, "overtaken")
    assert told_b["data"] == _overtake("b", "d", 250, 2, 3)
    assert (await recv_type(c, "overtaken"))["data"] == _overtake("c", "d", 250, 3, 4)
    await _all_told(client)
    for ws in (a, b, c, d):  # each told once; a (still ahead) and d (who passed) not at all
        await _no_more_notices(ws)
    kept = await _kept(client, "b")
    assert [(n["id"], n["type"], n["data"]) for n in kept] == [(told_b["id"], "overtaken", told_b["data"])]
    assert kept[0]["createdAt"].endswith("Z")
    assert await _kept(client, "b", after=kept[0]["id"]) == []
    assert await _kept(client, "a") == [] and await _kept(client, "d") == []
    for ws in (a, b, c, d):
        await ws.close()


async def test_an_award_tells_on_every_board_it_passed_on(client: AppClient, flow: Flow) -> None:
    await flow.award("bob", "q1")  # 100 on global, weekly and daily
    await flow.award("bob", "q2")  # 200
    await flow.award("alice", "q1")  # 100: behind bob everywhere
    ws = await _user(client, "bob")
    await flow.award("alice", "boss", "DEFEAT_BOSS")  # 600 on global only: passes bob there
    assert (await recv_type(ws, "overtaken"))["data"] == {
        **_overtake("bob", "alice", 600, 1, 2, board="global"),
        "by": {"userId": "alice", "username": "Alice", "score": 600},
    }
    await flow.award("alice", "q2")  # 200 on weekly and daily: a tie, reached later, passes nobody
    await flow.award("alice", "q3")  # 300: passes bob on weekly and daily
    second = [await recv_type(ws, "overtaken"), await recv_type(ws, "overtaken")]
    assert sorted(m["data"]["board"] for m in second) == ["daily", "weekly"]
    await _all_told(client)
    await _no_more_notices(ws)
    kept = await _kept(client, "bob")
    assert [n["data"]["board"] for n in kept[:1]] == ["global"] and len(kept) == 3
    assert [n["id"] for n in kept] == sorted(n["id"] for n in kept)
    await ws.close()


async def test_one_write_tells_at_most_the_100_nearest(client: AppClient, bearer: Any) -> None:
    boards = Boards(client, bearer)
    for i in range(1, 151):  # u1 .. u150, u150 first
        await boards.write("high", {"userId": f"u{i}", "score": i * 10}, key=f"u{i}")
    await boards.write("high", {"userId": "jumper", "score": 1}, key="j1")  # rank 151
    await boards.write("high", {"userId": "jumper", "score": 5000}, key="j2")  # passes all 150
    await _all_told(client)
    assert client.app[OVERTAKES].told == 100
    # The nearest passed are those now just behind the jumper: u150 (rank 2) .. u51 (rank 101).
    assert [n["data"] for n in await _kept(client, "u51")] == [_overtake("u51", "jumper", 5000, 100, 101)]
    assert [n["data"]["newRank"] for n in await _kept(client, "u150")] == [2]
    assert await _kept(client, "u50") == []


async def test_one_award_on_three_boards_tells_the_100_nearest_of_all(client: AppClient, flow: Flow) -> None:
    users = [f"p{i:02d}" for i in range(1, 61)]
    for user in users:  # 100 on global, weekly and daily, in this order on each
        await flow.award(user, "q1")
    await flow.award("jumper", "q1")  # 100 too, reached last: rank 61 on each board
    await flow.award("jumper", "q2")  # 200: passes all 60 on each of the three boards
    await _all_told(client)
    assert client.app[OVERTAKES].told == 100
    # One place behind the jumper on each board first, then two, ...: 34 on global (the action's
    # first board), 33 on weekly and daily.
    told = {user: sorted(n["data"]["board"] for n in await _kept(client, user)) for user in users}
    assert all(told[user] == ["daily", "global", "weekly"] for user in users[:33])
    assert told[users[33]] == ["global"]
    assert all(told[user] == [] for user in users[34:])
    assert [n["data"]["newRank"] for n in await _kept(client, users[33])] == [35]


def test_the_nearest_are_shared_out_one_place_at_a_time() -> None:
    assert overtakes_module.nearest([80, 80, 80], 100) == [34, 33, 33]
    assert overtakes_module.nearest([1, 150], 100) == [1, 99]
    assert overtakes_module.nearest([150], 100) == [100]
    assert overtakes_module.nearest([3, 0, 2], 100) == [3, 0, 2]
    assert overtakes_module.nearest([], 100) == []
    assert overtakes_module.nearest([5, 5], 3) == [2, 1]
    assert overtakes_module.nearest([7], 0) == [0]


def _nearest_place_by_place(passed: list[int], bound: int) -> list[int]:
    """The shares counted out one place at a time, as the rule says them."""
    shares, told, distance = [0] * len(passed), 0, 1
    while told < bound and distance <= max(passed, default=0):
        for i, n in enumerate(passed):
            if n >= distance and told < bound:
                shares[i] += 1
                told += 1
        distance += 1
    return shares


def test_the_nearest_computed_are_those_counted_out_place_by_place() -> None:
    draw = random.Random(13)
    for _ in range(3000):
        passed = [draw.choice((0, 1, 2, 5, 33, 34, 50, 99, 100, 101, 250)) for _ in range(draw.randrange(6))]
        bound = draw.choice((0, 1, 3, 10, 99, 100, 101))
        assert overtakes_module.nearest(passed, bound) == _nearest_place_by_place(passed, bound), (passed, bound)


async def test_the_channel_replays_kept_notices_then_live_ones_each_once(client: AppClient, bearer: Any) -> None:
    boards = Boards(client, bearer)
    await boards.write("high", {"userId": "b", "score": 200}, key="b")
    await boards.write("high", {"userId": "x", "score": 100}, key="x1")
    await boards.write("high", {"userId": "x", "score": 300}, key="x2")  # passes b while b is away
    await _all_told(client)
    [first] = await _kept(client, "b")

    ws = await _user(client, "b")
    await ws.send_json({"type": "subscribe", "channel": "notifications"})
    assert await recv(ws) == {"type": "subscribed", "channel": "notifications"}
    replayed = await recv(ws)
    assert replayed == {"type": "overtaken", "id": first["id"], "data": first["data"]}
    await _no_more_notices(ws)

    await boards.write("high", {"userId": "y", "score": 100}, key="y1")
    await boards.write("high", {"userId": "y", "score": 400}, key="y2")  # passes b live
    live = await recv_type(ws, "overtaken")
    assert live["data"]["by"]["userId"] == "y" and live["id"] != first["id"]
    await _all_told(client)
    # Subscribing again replays nothing this connection was sent already.
    await ws.send_json({"type": "subscribe", "channel": "notifications", "after": 0})
    assert (await recv(ws))["type"] == "subscribed"
    await _no_more_notices(ws)
    await ws.send_json({"type": "unsubscribe", "channel": "notifications"})
    assert await recv(ws) == {"type": "unsubscribed", "channel": "notifications"}

    # A new connection replays those after its `after` only.
    again = await _user(client, "b")
    await again.send_json({"type": "subscribe", "channel": "notifications", "after": first["id"]})
    assert (await recv(again))["type"] == "subscribed"
    assert (await recv(again)) == {"type": "overtaken", "id": live["id"], "data": live["data"]}
    await _no_more_notices(again)
    for each in (ws, again):
        await each.close()


async def test_a_notice_reaches_the_user_on_another_process(
    aiohttp_client: Any, db_path: Any, storage: dict[str, Any], clock: Clock, client: AppClient, bearer: Any
) -> None:
    if not storage:
        pytest.skip("one process: the embedded set-up has no other")
    other: AppClient = await aiohttp_client(app_with_clock(boards_config(db_path, storage), clock))
    boards = Boards(client, bearer)
    await boards.write("high", {"userId": "b", "score": 200}, key="b")
    await boards.write("high", {"userId": "x", "score": 100}, key="x1")
    there = await _user(other, "b")
    here = await _user(client, "b")
    await boards.write("high", {"userId": "x", "score": 300}, key="x2")
    for ws in (there, here):  # every connection of the user, on either process, once
        assert (await recv_type(ws, "overtaken"))["data"] == _overtake("b", "x", 300, 1, 2)
    await _all_told(client)
    for ws in (there, here):
        await _no_more_notices(ws)
        await ws.close()


async def test_beyond_the_pending_bound_a_writes_notices_are_skipped(
    client: AppClient, bearer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    boards = Boards(client, bearer)
    await boards.write("high", {"userId": "b", "score": 200}, key="b")
    await boards.write("high", {"userId": "x", "score": 100}, key="x1")
    monkeypatch.setattr(overtakes_module, "MAX_PENDING", 0)
    await boards.write("high", {"userId": "x", "score": 300}, key="x2")
    await _all_told(client)
    assert client.app[OVERTAKES].skipped == 1
    assert await _kept(client, "b") == []


async def test_skipped_writes_are_logged_a_line_at_a_time_not_one_each(
    client: AppClient, bearer: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=overtakes_module.__name__)
    boards = Boards(client, bearer)
    monkeypatch.setattr(overtakes_module, "MAX_PENDING", 0)

    async def passes(user: str, score: int) -> None:  # enters last, then goes first: passes everyone
        await boards.write("high", {"userId": user, "score": 0}, key=f"{user}-1")
        await boards.write("high", {"userId": user, "score": score}, key=f"{user}-2")

    def lines() -> list[str]:
        return [r.getMessage().split(" since")[0] for r in caplog.records if "skipped" in r.getMessage()]

    await boards.write("high", {"userId": "b", "score": 10}, key="b")
    for n in range(3):
        await passes(f"x{n}", 100 + n)
    assert client.app[OVERTAKES].skipped == 3
    assert lines() == ["overtake notices skipped: 1 writes"]
    clock.now_ms += overtakes_module.SKIP_LOG_MS - 1
    await passes("y", 200)
    assert len(lines()) == 1
    clock.now_ms += 1
    await passes("z", 300)
    assert lines() == [
        "overtake notices skipped: 1 writes",
        "overtake notices skipped: 4 writes",  # the three since the first line, and this one
    ]
    assert client.app[OVERTAKES].skipped == 5


@pytest.mark.parametrize(
    "after", ["-1", "abc", "1.5", "1e3", "\u0663", "9223372036854775808", "1\x00", " 1", "0x10", "", "\uff11"]
)
async def test_a_bad_after_is_refused(client: AppClient, after: str) -> None:
    error = await _kept(client, "b", status=400, after=after)
    assert error["code"] == "VALIDATION_ERROR"


async def test_notices_need_a_user(client: AppClient) -> None:
    resp = await client.get(NOTIFICATIONS)
    assert resp.status == 401 and (await envelope(resp))["error"]["code"] == "UNAUTHORIZED"
    resp = await client.get(NOTIFICATIONS, headers={"Authorization": "Bearer not.a.token"})
    assert resp.status == 401
    anonymous = await client.ws_connect(WS)
    assert (await recv(anonymous))["type"] == "connected"
    await anonymous.send_json({"type": "subscribe", "channel": "notifications"})
    assert (await recv(anonymous))["error"]["code"] == "UNAUTHORIZED"
    for after in (-1, "7", 1.5, 2**63, None, [1], {"a": 1}):
        await anonymous.send_json({"type": "subscribe", "channel": "notifications", "after": after})
        assert (await recv(anonymous))["error"]["code"] == ("UNAUTHORIZED" if after is None else "VALIDATION_ERROR")
    await anonymous.close()


async def test_kept_notices_are_those_of_the_kept_time(client: AppClient, bearer: Any, clock: Clock) -> None:
    overtakes = client.app[OVERTAKES]
    boards = Boards(client, bearer)
    await boards.write("high", {"userId": "b", "score": 200}, key="b")
    await boards.write("high", {"userId": "x", "score": 100}, key="x1")
    await boards.write("high", {"userId": "x", "score": 300}, key="x2")
    await _all_told(client)
    assert len(await _kept(client, "b")) == 1
    clock.now_ms += overtakes_module.KEEP_MS + 1  # a week and a moment later: no longer kept
    assert await _kept(client, "b") == []
    assert await overtakes.purge() == 1


class Model:
    """A `best` board as the contract orders it: higher first, an equal score reached first ahead."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[int, int]] = {}  # user -> (score, when it was reached)

    def order(self) -> list[str]:
        return sorted(self.entries, key=lambda u: (-self.entries[u][0], self.entries[u][1]))

    def write(self, user: str, score: int, when: int) -> list[dict[str, Any]]:
        """Apply a write; the notices it makes."""
        if user in self.entries and score <= self.entries[user][0]:
            return []
        first = user not in self.entries
        before = self.order()
        self.entries[user] = (score, when)
        if first:
            return []
        after = self.order()
        was, now = before.index(user), after.index(user)
        return [
            _overtake(other, user, score, before.index(other) + 1, after.index(other) + 1) for other in before[now:was]
        ]


class Listener:
    """One user's connection, collecting the `overtaken` it gets; reconnects replay after the last id."""

    def __init__(self, client: AppClient, user: str) -> None:
        self.client, self.user = client, user
        self.ws: Any = None
        self.got: dict[int, dict[str, Any]] = {}

    async def connect(self) -> None:
        self.ws = await _user(self.client, self.user)
        after = {"after": max(self.got)} if self.got else {}
        await self.ws.send_json({"type": "subscribe", "channel": "notifications", **after})
        assert (await recv(self.ws))["type"] == "subscribed"

    async def drain(self) -> None:
        await self.ws.send_json({"type": "ping"})
        while (message := await recv(self.ws))["type"] != "pong":
            if message["type"] == "overtaken":
                assert message["id"] not in self.got, f"{self.user} got notice {message['id']} twice"
                self.got[message["id"]] = message["data"]


async def test_a_burst_tells_exactly_the_users_passed_once_each(client: AppClient, bearer: Any) -> None:
    rng = random.Random(7)
    boards, model = Boards(client, bearer), Model()
    users = [f"p{i}" for i in range(20)]
    listeners = {u: Listener(client, u) for u in users}
    for listener in listeners.values():
        await listener.connect()
    expected: dict[str, list[dict[str, Any]]] = {u: [] for u in users}
    for n in range(300):
        user = rng.choice(users)
        score = rng.randrange(1, 60)
        for notice in model.write(user, score, n):
            expected[notice["userId"]].append(notice)
        await boards.write("high", {"userId": user, "score": score}, key=f"w{n}")
        if n in (100, 200):  # half of them drop their connection and come back, replaying after their last id
            await _all_told(client)
            for listener in list(listeners.values())[::2]:
                await listener.drain()
                await listener.ws.close()
                await listener.connect()
    await _all_told(client)
    assert sum(map(len, expected.values())) > 50  # the burst passed users, often
    for user, listener in listeners.items():
        await listener.drain()
        assert [listener.got[i] for i in sorted(listener.got)] == expected[user], user
        assert [n["data"] for n in await _kept(client, user)] == expected[user], user
        await listener.ws.close()


async def test_writes_at_once_count_every_notice_they_keep(client: AppClient, bearer: Any) -> None:
    # Their notices are kept together while each write's task waits: the count must add each one's.
    boards = Boards(client, bearer)
    behind = [f"b{i}" for i in range(10)]
    for i, user in enumerate(behind):
        await boards.write("high", {"userId": user, "score": 100 + i}, key=f"k-{user}")
    passers = [f"p{i}" for i in range(8)]
    for user in passers:
        await boards.write("high", {"userId": user, "score": 1}, key=f"first-{user}")
    await _all_told(client)
    told_before = client.app[OVERTAKES].told
    await asyncio.gather(
        *(boards.write("high", {"userId": user, "score": 500 + i}, key=f"up-{user}") for i, user in enumerate(passers))
    )
    await _all_told(client)
    kept = sum([len(await _kept(client, user)) for user in behind + passers])
    assert kept >= 10 * len(passers)  # each passed every one of `behind`, at the least
    assert client.app[OVERTAKES].told - told_before == kept


async def test_each_user_keeps_only_the_newest_notices(
    client: AppClient, bearer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(overtakes_module, "KEEP", 2)
    overtakes = client.app[OVERTAKES]
    boards = Boards(client, bearer)
    await boards.write("high", {"userId": "b", "score": 1000}, key="b")
    for n in range(3):  # three users pass b one after another
        await boards.write("high", {"userId": f"x{n}", "score": 1}, key=f"x{n}-1")
        await boards.write("high", {"userId": f"x{n}", "score": 2000 + n}, key=f"x{n}-2")
    await _all_told(client)
    assert [n["data"]["by"]["userId"] for n in await _kept(client, "b")] == ["x1", "x2"]  # the newest two
    stored = await overtakes.store.notices("b", after=0, since_ms=0, keep=1000)
    assert len(stored) == 3  # until the purge trims them
    assert await overtakes.purge() >= 1
    assert [overtake_of(n).by.user_id for n in await overtakes.store.notices("b", after=0, since_ms=0, keep=1000)] == [
        "x1",
        "x2",
    ]


async def _passed_by(client: AppClient, bearer: Any, user: str, passers: list[str], score: int = 1000) -> None:
    """`user` enters the board at `score`, unless it has, then `passers` pass it one after another
    (from just behind to just ahead: they pass nobody else), each notice kept before the next write."""
    boards = Boards(client, bearer)
    await boards.write("high", {"userId": user, "score": score}, key=user)
    for passer in passers:
        await boards.write("high", {"userId": passer, "score": score - 1}, key=f"{passer}-1")
        await boards.write("high", {"userId": passer, "score": score + 1}, key=f"{passer}-2")
        await _all_told(client)


async def _stored(client: AppClient, user: str) -> list[str]:
    """Who passed `user`, by the notices the store holds for it (trimmed or not), oldest first."""
    notices = await client.app[OVERTAKES].store.notices(user, after=0, since_ms=0, keep=1000)
    return [overtake_of(n).by.user_id for n in notices]


async def test_a_user_given_many_notices_is_trimmed_without_waiting_for_the_purge(
    client: AppClient, bearer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(overtakes_module, "KEEP", 2)
    monkeypatch.setattr(overtakes_module, "TRIM_AFTER", 3)
    await _passed_by(client, bearer, "b", ["x0", "x1"])
    assert await _stored(client, "b") == ["x0", "x1"]  # two since b's last trim: none yet
    await _passed_by(client, bearer, "b", ["x2"])
    # The third: b is trimmed right after the write that keeps it, its newest two left.
    assert await _stored(client, "b") == ["x1", "x2"]
    assert await client.app[OVERTAKES].purge() == 0  # nothing left for the purge


async def test_the_purge_trims_a_few_users_a_write_and_retries_a_failed_trim(
    client: AppClient, bearer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(overtakes_module, "KEEP", 1)
    monkeypatch.setattr(overtakes_module, "TRIM_AFTER", 2)
    monkeypatch.setattr(overtakes_module, "TRIM_CHUNK", 2)
    overtakes = client.app[OVERTAKES]
    trims: list[list[str]] = []
    real_trim = overtakes.store.trim_notices

    async def trim(user_ids: list[str], *, keep: int) -> int:
        trims.append(sorted(user_ids))
        if len(trims) == 1:
            raise ServiceUnavailable("The database is unavailable")
        return await real_trim(user_ids, keep=keep)

    monkeypatch.setattr(overtakes.store, "trim_notices", trim)
    await _passed_by(client, bearer, "b", ["x0", "x1"])  # b's trim, due with the second, fails
    assert trims == [["b"]] and await _stored(client, "b") == ["x0", "x1"]
    for score, user in ((2000, "c"), (3000, "d"), (4000, "e")):  # one notice each: left for the purge
        await _passed_by(client, bearer, user, [f"{user}-x"], score)
    assert trims == [["b"]]
    assert await overtakes.purge() == 1  # b's oldest; c, d and e keep their one
    # b (again), c, d and e: at most TRIM_CHUNK users a store write.
    assert [len(chunk) for chunk in trims[1:]] == [2, 2]
    assert sorted(user for chunk in trims[1:] for user in chunk) == ["b", "c", "d", "e"]
    assert await _stored(client, "b") == ["x1"]
    assert [await _stored(client, user) for user in ("c", "d", "e")] == [["c-x"], ["d-x"], ["e-x"]]


async def test_notices_kept_but_not_sent_are_trimmed_all_the_same(
    client: AppClient, bearer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(overtakes_module, "KEEP", 1)
    overtakes = client.app[OVERTAKES]
    await _passed_by(client, bearer, "b", ["x0"])
    assert await overtakes.purge() == 0  # b has its one: no user is left to trim
    real_tell = overtakes.fanout.tell

    async def tell(notices: list[Any]) -> None:
        raise ServiceUnavailable("Redis is unavailable")

    monkeypatch.setattr(overtakes.fanout, "tell", tell)
    await _passed_by(client, bearer, "b", ["x1"])  # kept, then the fan-out fails
    monkeypatch.setattr(overtakes.fanout, "tell", real_tell)
    assert await _stored(client, "b") == ["x0", "x1"]
    assert await overtakes.purge() == 1  # b's oldest: counted before the fan-out failed
    assert await _stored(client, "b") == ["x1"]


async def test_a_purge_whose_trim_fails_leaves_its_users_for_the_next(
    client: AppClient, bearer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(overtakes_module, "KEEP", 1)
    overtakes = client.app[OVERTAKES]
    await _passed_by(client, bearer, "b", ["x0", "x1"])
    real_trim = overtakes.store.trim_notices

    async def trim(user_ids: list[str], *, keep: int) -> int:
        raise ServiceUnavailable("The database is unavailable")

    monkeypatch.setattr(overtakes.store, "trim_notices", trim)
    with pytest.raises(ServiceUnavailable):
        await overtakes.purge()
    monkeypatch.setattr(overtakes.store, "trim_notices", real_trim)
    assert await _stored(client, "b") == ["x0", "x1"]
    assert await overtakes.purge() == 1  # b, still due: its oldest goes
    assert await _stored(client, "b") == ["x1"]
