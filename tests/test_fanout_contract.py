"""The `Fanout` contract, one set of tests run against every implementation: handlers called in
this process, and events sent through Redis Pub/Sub to every process. Then what only Redis does:
another process's view on the same prefix, and the notice that the board was reloaded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis.asyncio as aioredis

from app.fanout import Fanout
from app.fanout.local import LocalFanout
from app.fanout.redis import RedisFanout
from app.records import AwardEvent, BoardPeriod, EntryChange, Move, Notice
from app.redis_client import Keys, connect, database_of

from .contracts import LOCAL, REDIS, redis_prefix_for, until
from .isolation import REDIS_URL

MakeFanout = Callable[[], Awaitable[Fanout]]
MakeRedisFanout = Callable[[], Awaitable[RedisFanout]]


class Listeners:
    """RedisFanouts on one prefix, each with its `run()` as a task, as processes would hold them."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.keys = Keys(prefix, db=database_of(client))
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> RedisFanout:
        """A new fan-out listening on the channel; returned once Redis counts it as subscribed, so
        that nothing published after this is missed (Pub/Sub keeps nothing for a late subscriber)."""
        fanout = RedisFanout(self.client, self.keys)
        self.tasks.append(asyncio.create_task(fanout.run()))

        async def subscribed() -> bool:
            [(_, count)] = await self.client.pubsub_numsub(self.keys.channel)
            return int(count) == len(self.tasks)

        await until(subscribed, f"{len(self.tasks)} subscriber(s) on the award channel")
        return fanout

    async def stop(self) -> None:
        """Cancel every listener and wait for it to let its connection go."""
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def listeners(prefix: str, url: str = REDIS_URL) -> AsyncIterator[Listeners]:
    """Listeners on `prefix` with a client of their own, all stopped and closed at the end."""
    client = connect(url, pool_size=8)
    started = Listeners(client, prefix)
    try:
        yield started
    finally:
        await started.stop()
        await client.aclose()


@pytest.fixture(params=[LOCAL, REDIS])
def prefix(request: pytest.FixtureRequest) -> str | None:
    """The implementation under test: None for the local one, else the Redis one's key prefix."""
    return redis_prefix_for(request)


@pytest.fixture
async def make_fanout(prefix: str | None) -> AsyncIterator[MakeFanout]:
    """A maker of fan-outs of one implementation, ready to deliver what is published next."""
    if prefix is None:

        async def local() -> Fanout:
            return LocalFanout()

        yield local
        return
    async with listeners(prefix) as started:
        yield started.start


@pytest.fixture
async def make_redis_fanout(redis_prefix: str) -> AsyncIterator[MakeRedisFanout]:
    """A maker of RedisFanouts on one prefix: each another process's view of the same channel."""
    async with listeners(redis_prefix) as started:
        yield started.start


def _event(n: int, user: str = "alice") -> AwardEvent:
    """The award event of the n-th award (n >= 1), which took its user to rank n."""
    change = EntryChange(
        where=BoardPeriod(board="weekly", period="2026-W49"),
        previous_score=None if n == 1 else 100 * (n - 1),
        new_score=100 * n,
        subscore=n if n % 2 else None,
        metadata='{"lap":1}' if n % 3 == 0 else None,
        seq=n,
    )
    move = Move(change=change, previous_rank=None if n == 1 else n - 1, rank=n)
    return AwardEvent(user_id=user, username=user.title(), at_ms=1000 + n, moves=[move])


async def _received(got: list[AwardEvent], last: AwardEvent) -> None:
    """Wait until `last`, the final event published, reached the handler that appends to `got`.
    Events come in the order published, so everything before it has arrived by then too."""

    async def arrived() -> bool:
        return last in got

    await until(arrived, f"event {last.moves[0].change.seq}")


async def test_every_handler_gets_each_event_once_in_order(make_fanout: MakeFanout) -> None:
    fanout = await make_fanout()
    got: list[list[AwardEvent]] = [[], [], []]
    for received in got:
        fanout.subscribe(received.append)
    events = [_event(n, user) for n, user in enumerate(["alice", "bob", "alice", "carol"] * 5, start=1)]
    for event in events[:10]:
        await fanout.publish(event)
    await asyncio.gather(*(fanout.publish(e) for e in events[10:]))  # published together, in this order
    for received in got:
        await _received(received, events[-1])
    assert got == [events, events, events]


async def test_a_failing_handler_does_not_stop_the_others(
    make_fanout: MakeFanout, caplog: pytest.LogCaptureFixture
) -> None:
    fanout = await make_fanout()
    before: list[AwardEvent] = []
    after: list[AwardEvent] = []

    def failing(event: AwardEvent) -> None:
        raise RuntimeError(f"handler broke on {event.moves[0].change.seq}")

    fanout.subscribe(before.append)
    fanout.subscribe(failing)
    fanout.subscribe(after.append)
    events = [_event(n) for n in (1, 2, 3)]
    for event in events:
        await fanout.publish(event)  # the publisher is not told either
    await _received(after, events[-1])
    assert before == after == events
    failures = [r for r in caplog.records if r.getMessage() == "fan-out handler failed"]
    assert [str(r.exc_info[1]) for r in failures if r.exc_info] == [f"handler broke on {n}" for n in (1, 2, 3)]


async def test_notices_reach_the_notice_handlers_not_the_award_handlers(make_fanout: MakeFanout) -> None:
    fanout = await make_fanout()
    awards: list[AwardEvent] = []
    told: list[list[Notice]] = []
    fanout.subscribe(awards.append)
    fanout.on_notices(told.append)
    notices = [Notice(id=n, user_id=f"u{n}", type="overtaken", data='{"n":1}', created_ms=5) for n in (7, 8)]
    await fanout.tell(notices)
    await fanout.publish(_event(1))  # once this arrived, the notices have too
    await _received(awards, _event(1))
    assert told == [notices] and awards == [_event(1)]


async def test_a_shrink_reaches_the_shrink_callbacks(make_fanout: MakeFanout) -> None:
    fanout = await make_fanout()
    shrunk: list[str] = []
    awards: list[AwardEvent] = []
    fanout.on_shrink(lambda: shrunk.append("shrank"))
    fanout.subscribe(awards.append)
    await fanout.shrank()
    await fanout.publish(_event(1))  # once this arrived, the shrink has too
    await _received(awards, _event(1))
    assert shrunk == ["shrank"] and awards == [_event(1)]


async def test_an_event_reaches_another_process_on_the_same_prefix(make_redis_fanout: MakeRedisFanout) -> None:
    here, there = await make_redis_fanout(), await make_redis_fanout()
    got_here: list[AwardEvent] = []
    got_there: list[AwardEvent] = []
    here.subscribe(got_here.append)
    there.subscribe(got_there.append)
    events = [_event(n) for n in (1, 2, 3)]
    for event in events:
        await here.publish(event)
    await _received(got_there, events[-1])
    await _received(got_here, events[-1])  # the publishing process hears its own events too
    assert got_there == got_here == events
    await there.publish(_event(4))
    await _received(got_here, _event(4))
    await _received(got_there, _event(4))
    assert got_here == got_there == [*events, _event(4)]


async def test_a_reloaded_notice_calls_the_gap_callbacks_of_every_process(make_redis_fanout: MakeRedisFanout) -> None:
    here, there = await make_redis_fanout(), await make_redis_fanout()
    gaps_here: list[str] = []
    gaps_there: list[str] = []
    here.on_gap(lambda: gaps_here.append("gap"))
    there.on_gap(lambda: gaps_there.append("gap"))
    got_there: list[AwardEvent] = []
    there.subscribe(got_there.append)

    await here.reloaded()
    assert gaps_here  # the process that reloaded does not wait for its own notice
    # (its notice then comes back to it and calls its callbacks once more: a second resync)

    async def noticed() -> bool:
        return bool(gaps_there)

    await until(noticed, "the reloaded notice in the other process")
    await here.publish(_event(1))  # after the notice: once this arrived, every earlier message has
    await _received(got_there, _event(1))
    assert gaps_there == ["gap"]  # once
    assert got_there == [_event(1)]  # a notice is no award: the award handlers were not called


async def test_a_deployment_in_another_database_hears_nothing(redis_prefix: str) -> None:
    # Redis's pub/sub spans its databases: the same prefix in another database is another deployment.
    parts = urlsplit(REDIS_URL)
    db = int(parts.path.strip("/") or 0)
    elsewhere = urlunsplit(parts._replace(path=f"/{1 if db == 0 else db - 1}"))  # another of the 16
    async with listeners(redis_prefix) as here, listeners(redis_prefix, elsewhere) as there:
        mine, theirs = await here.start(), await there.start()
        assert mine.keys.channel != theirs.keys.channel
        got_mine: list[AwardEvent] = []
        got_theirs: list[AwardEvent] = []
        mine.subscribe(got_mine.append)
        theirs.subscribe(got_theirs.append)
        await theirs.publish(_event(1, "bob"))
        await mine.publish(_event(2))
        await _received(got_mine, _event(2))
        await _received(got_theirs, _event(1, "bob"))
        assert got_mine == [_event(2)] and got_theirs == [_event(1, "bob")]
