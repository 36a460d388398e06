"""static/scoreboard-client.js and the board's event stream in headless Chromium, outside the live
page: a window of ranks kept equal to GET /ranks, a missed message (a gap in `seq`) answered by a
fresh snapshot, an around window that waits for a token, and a plain EventSource that receives
updates and resumes with `Last-Event-ID`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from app.api.keys import HUB
from app.errors import CLOSE_SERVICE_RESTART

from .browsers import skip_without_chromium
from .conftest import Flow
from .live_client import token_for

pytestmark = pytest.mark.browser

skip_without_chromium()


def _base(client: Any) -> str:
    return f"http://{client.host}:{client.port}"


async def _blank(browser: Any, client: Any) -> Any:
    """A page of the server's origin that runs no script of its own (the health check's JSON)."""
    page = await browser.new_page()
    await page.goto(_base(client) + "/healthz")
    return page


async def _until(check: Callable[[], Any], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


# A WebSocket that drops the one ranks_update diff that arrives while `window.dropNext` is set, as
# a lossy path would: what the client sees of it is the gap in `seq` on the next message.
LOSSY_SOCKET = """() => {
    window.dropped = [];
    window.WebSocket = class extends window.WebSocket {
        set onmessage(handler) {
            super.onmessage = (ev) => {
                const msg = JSON.parse(ev.data);
                if (window.dropNext && msg.type === 'ranks_update' && !msg.data.snapshot) {
                    window.dropNext = false;
                    window.dropped.push(msg.data.seq);
                    return;
                }
                handler(ev);
            };
        }
    };
}"""

WATCH_RANKS = """async () => {
    const { ScoreboardClient } = await import('/static/scoreboard-client.js');
    const client = new ScoreboardClient();
    const ranks = client.ranks('global', 3, 8);
    window.seen = { updates: [], gaps: [] };
    ranks.on('update', (value) => window.seen.updates.push(value));
    ranks.on('gap', (gap) => window.seen.gaps.push(gap));
    client.connect();
}"""


async def _shown(page: Any) -> list[tuple[int, str, int]]:
    entries: list[dict[str, Any]] = await page.evaluate("() => window.seen.updates.at(-1)?.entries ?? []")
    return [(e["rank"], e["userId"], e["score"]) for e in entries]


async def test_a_ranks_window_follows_the_board_and_a_gap_brings_a_fresh_snapshot(
    browser: Any, flow: Flow, client: Any
) -> None:
    for i in range(10):  # u0 … u9 at 1000 … 100
        for n in range(10 - i):
            await flow.award(f"u{i}", f"q{n}")

    async def expected() -> list[tuple[int, str, int]]:
        resp = await client.get("/api/v1/boards/global/ranks", params={"from": "3", "limit": "6"})
        return [(e["rank"], e["userId"], e["score"]) for e in (await resp.json())["data"]["leaderboard"]]

    async def matches() -> bool:
        return await _shown(page) == await expected()

    page = await _blank(browser, client)
    sent: list[str] = []  # the frames the client sent

    def keep(frame: str) -> None:  # a Python function: Playwright cannot take a bound builtin
        sent.append(frame)

    page.on("websocket", lambda ws: ws.on("framesent", keep))
    await page.evaluate(LOSSY_SOCKET)
    await page.evaluate(WATCH_RANKS)
    await _until(matches, "the window's snapshot")
    assert [(e[1]) for e in await _shown(page)] == ["u2", "u3", "u4", "u5", "u6", "u7"]

    await flow.award("u8", "boss", "DEFEAT_BOSS")  # 200 + 500: from rank 9 to rank 4, into the window
    await _until(matches, "a diff applied")
    assert await page.evaluate("() => window.seen.updates.at(-1).snapshot") is False

    # One diff lost on the way: the next message's seq shows the gap, and the client subscribes
    # again for a fresh snapshot instead of applying diffs to a window it no longer knows.
    await page.evaluate("() => { window.dropNext = true; }")
    await flow.award("u9", "boss", "DEFEAT_BOSS")  # 100 + 500: into the window at rank 5
    await _until(lambda: page.evaluate("() => window.dropped.length === 1"), "a diff dropped")
    await flow.award("u7", "boss", "DEFEAT_BOSS")  # 300 + 500: the next diff, with a seq past the gap
    await _until(lambda: page.evaluate("() => window.seen.gaps.length === 1"), "the gap seen")
    dropped = await page.evaluate("() => window.dropped[0]")
    assert await page.evaluate("() => window.seen.gaps[0]") == {"expected": dropped, "got": dropped + 1}
    await _until(matches, "the window again after the fresh snapshot")
    assert await page.evaluate("() => window.seen.updates.at(-1).snapshot") is True
    subscribes = [frame for frame in sent if '"subscribe"' in frame and '"ranks"' in frame]
    assert len(subscribes) == 2, sent


OPEN_STREAM = """() => {
    window.events = [];
    const stream = new EventSource('/api/v1/boards/global/stream');
    stream.addEventListener('leaderboard_update', (ev) => {
        const users = JSON.parse(ev.data).data.leaderboard.map((e) => e.userId);
        window.events.push({ id: ev.lastEventId, users });
    });
}"""


async def test_an_event_source_receives_updates_and_resumes_with_last_event_id(
    browser: Any, flow: Flow, client: Any
) -> None:
    await flow.award("alice", "q1")
    page = await _blank(browser, client)
    streams: list[Any] = []
    page.on("request", lambda request: streams.append(request) if "/stream" in request.url else None)
    await page.evaluate(OPEN_STREAM)

    async def events() -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = await page.evaluate("() => window.events")
        return seen

    await _until(lambda: _count(events, 1), "the snapshot")
    await flow.award("bob", "q1", "DEFEAT_BOSS")
    await _until(lambda: _count(events, 2), "the update")
    assert await events() == [{"id": "1", "users": ["alice"]}, {"id": "2", "users": ["bob", "alice"]}]

    # The server ends the stream (as a restart does); the EventSource comes back by itself, naming
    # the last event it saw, and the stream goes on from the next id with a fresh snapshot.
    hub = client.app[HUB]
    hub.close_all(CLOSE_SERVICE_RESTART, "test")
    await hub.finished()
    await flow.award("carol", "q1", "DEFEAT_BOSS")
    await _until(lambda: _count(events, 3), "the stream resumed", timeout=10.0)
    assert len(streams) == 2
    assert (await streams[1].all_headers()).get("last-event-id") == "2"
    resumed = (await events())[2]
    assert resumed["id"] == "3" and {"alice", "bob"} <= set(resumed["users"])
    # Carol's award, made while the stream was away, is in that snapshot or the update after it.
    await _until(lambda: _carol_seen(events), "carol's award")


async def _carol_seen(events: Callable[[], Any]) -> bool:
    return any("carol" in event["users"] for event in await events())


async def _count(events: Callable[[], Any], n: int) -> bool:
    return len(await events()) >= n


AROUND_LATER = """async () => {
    const { ScoreboardClient } = await import('/static/scoreboard-client.js');
    const client = (window.client = new ScoreboardClient());
    window.seen = { updates: [], tops: 0 };
    client.around('global', 1).on('update', (value) => window.seen.updates.push(value));
    client.leaderboard('global').on('update', () => { window.seen.tops += 1; });
    client.connect();
}"""


async def test_an_around_window_waits_for_a_token_and_follows_its_user_once_given(
    browser: Any, flow: Flow, client: Any
) -> None:
    for i in range(3):  # u0 300, u1 200, u2 100
        for n in range(3 - i):
            await flow.award(f"u{i}", f"q{n}")
    page = await _blank(browser, client)
    await page.evaluate(AROUND_LATER)
    await _until(lambda: page.evaluate("() => window.seen.tops > 0"), "the anonymous client live")
    assert await page.evaluate("() => [window.client.userId, window.seen.updates.length]") == [None, 0]

    await page.evaluate(f"() => window.client.setToken({token_for('u2')!r})")
    await _until(lambda: page.evaluate("() => window.seen.updates.length > 0"), "the window around u2")
    assert await page.evaluate("() => window.client.userId") == "u2"
    assert await _shown(page) == [(2, "u1", 200), (3, "u2", 100)]
    await flow.award("u2", "boss", "DEFEAT_BOSS")  # 600: first
    await _until(lambda: _shown_is(page, [(1, "u2", 600), (2, "u0", 300)]), "the window moved with u2")


async def _shown_is(page: Any, expected: list[tuple[int, str, int]]) -> bool:
    return await _shown(page) == expected


# A WebSocket that reaches no server: `window.serve(socket, message)` plays the server's part for
# each message the client sends (`socket.push(message)` answers, `socket.close(code)` ends it), so
# that a test can put the server's messages in exactly the order it needs. Every socket is kept in
# `window.sockets`, with what the client sent on it.
SCRIPTED_SOCKET = """() => {
    window.sockets = [];
    window.serve = () => {};
    window.WebSocket = class {
        static CONNECTING = 0;
        static OPEN = 1;
        static CLOSING = 2;
        static CLOSED = 3;
        constructor(url) {
            Object.assign(this, { url, readyState: 0, sent: [], openedAt: Date.now() });
            window.sockets.push(this);
            setTimeout(() => {
                this.readyState = 1;
                this.push({ type: 'connected', clientId: `c${window.sockets.length}` });
            }, 0);
        }
        push(msg) {
            if (this.readyState === 1) this.onmessage?.({ data: JSON.stringify(msg) });
        }
        send(text) {
            const msg = JSON.parse(text);
            this.sent.push(msg);
            setTimeout(() => window.serve(this, msg), 0);
        }
        close(code = 1000) {
            if (this.readyState > 1) return;
            this.readyState = 3;
            setTimeout(() => this.onclose?.({ code }), 0);
        }
    };
}"""

# Subscriptions kept in `window.subs` by name, with what each heard in `window.heard`.
WATCH = """async ([token, options]) => {
    const { ScoreboardClient } = await import('/static/scoreboard-client.js');
    const client = (window.client = new ScoreboardClient({ token, transports: ['websocket'], ...options }));
    window.subs = {};
    window.heard = [];
    client.on('error', (error) => window.heard.push(['client', 'error', error.code]));
    window.watch = (name, sub) => {
        window.subs[name] = sub;
        sub.on('error', (error) => window.heard.push([name, 'error', error.code]));
        sub.on('update', () => window.heard.push([name, 'update']));
        return sub;
    };
}"""


def _retired(channel: str, board: str) -> str:
    """What the server sends `socket` for each subscription of a board an operator retired."""
    error = f"{{ code: 'BOARD_NOT_FOUND', message: 'Board retired', details: {{ channel: '{channel}', board: '{board}' }} }}"
    ended = f"{{ type: 'unsubscribed', channel: '{channel}', board: '{board}' }}"
    return f"socket.push({{ type: 'error', error: {error} }}); socket.push({ended});"


async def _scripted(browser: Any, client: Any, serve: str, token: str | None = None, **options: Any) -> Any:
    page = await _blank(browser, client)
    await page.evaluate(SCRIPTED_SOCKET)
    await page.evaluate(f"() => {{ window.serve = {serve}; }}")
    await page.evaluate(WATCH, [token, options])
    return page


async def _closed(page: Any) -> dict[str, bool]:
    closed: dict[str, bool] = await page.evaluate(
        "() => Object.fromEntries(Object.entries(window.subs).map(([name, sub]) => [name, sub.closed]))"
    )
    return closed


# Answers every subscribe; the one for `weekly` only after the word that board `cup` was retired.
RETIRED_MEANWHILE = """(socket, msg) => {
    if (msg.type !== 'subscribe') return;
    if (msg.board === 'weekly') { RETIRED }
    socket.push({ type: 'subscribed', channel: msg.channel, board: msg.board });
}""".replace("RETIRED", _retired("leaderboard", "cup"))


async def test_an_error_ends_the_subscription_it_names_not_the_one_awaiting_an_answer(
    browser: Any, client: Any
) -> None:
    page = await _scripted(browser, client, RETIRED_MEANWHILE)
    await page.evaluate(
        "() => { watch('cup', client.leaderboard('cup')); watch('global', client.leaderboard('global')); client.connect(); }"
    )
    await _until(lambda: page.evaluate("() => window.sockets[0]?.sent.length === 2"), "both subscribed")
    # The retirement's word comes while `weekly` awaits its answer: it ends `cup`, not `weekly`.
    await page.evaluate("() => watch('weekly', client.ranks('weekly', 1, 5))")
    await _until(lambda: page.evaluate("() => window.subs.cup.closed"), "cup ended")
    assert await page.evaluate("() => window.heard") == [["cup", "error", "BOARD_NOT_FOUND"]]
    # And one that comes when no subscribe awaits an answer ends the subscription it names too.
    await page.evaluate(f"() => {{ const socket = window.sockets[0]; {_retired('ranks', 'weekly')} }}")
    await _until(lambda: page.evaluate("() => window.subs.weekly.closed"), "weekly ended")
    assert await page.evaluate("() => window.heard.at(-1)") == ["weekly", "error", "BOARD_NOT_FOUND"]
    assert await _closed(page) == {"cup": True, "global": False, "weekly": True}
    # A subscription the server ends without saying why ends all the same.
    await page.evaluate(
        "() => window.sockets[0].push({ type: 'unsubscribed', channel: 'leaderboard', board: 'global' })"
    )
    await _until(lambda: page.evaluate("() => window.subs.global.closed"), "global ended")
    assert await page.evaluate("() => window.heard.at(-1)") == ["global", "error", "UNSUBSCRIBED"]


# A server that answers the subscribes sent after an auth it refuses as one connection too many,
# as anonymous (UNAUTHORIZED for `around`), then closes with 4429; once `window.healthy`, one that
# takes the token and serves.
TOO_MANY_THEN_HEALTHY = """(socket, msg) => {
    const answer = { type: 'subscribed', channel: msg.channel, board: msg.board };
    if (window.healthy) {
        if (msg.type === 'auth') socket.push({ type: 'authenticated', userId: 'u1' });
        if (msg.type !== 'subscribe') return;
        socket.push(answer);
        const entries = [{ rank: 1, userId: 'u1', username: 'U1', score: 100 }];
        const data = { seq: 1, board: 'global', period: 'all', channel: 'around', snapshot: true, entries, total: 1 };
        if (msg.channel === 'around') socket.push({ type: 'ranks_update', data });
    } else if (msg.type === 'auth') {
        setTimeout(() => socket.close(4429), 20); // once the subscribes sent with it are answered
    } else if (msg.type === 'subscribe' && msg.channel === 'around') {
        const details = { channel: 'around', board: 'global' };
        socket.push({ type: 'error', error: { code: 'UNAUTHORIZED', message: 'Needs a user', details } });
    } else if (msg.type === 'subscribe') {
        socket.push(answer);
    }
}"""


async def test_a_socket_closed_as_one_too_many_neither_resets_the_backoff_nor_ends_a_subscription(
    browser: Any, client: Any
) -> None:
    page = await _scripted(browser, client, TOO_MANY_THEN_HEALTHY, token_for("u1"), backoffBaseMs=100)
    await page.evaluate("() => { Math.random = () => 0.5; }")  # each delay half its ceiling
    await page.evaluate(
        "() => { watch('top', client.leaderboard('global')); watch('around', client.around('global', 1)); }"
    )
    await page.evaluate("() => client.connect()")
    # Its `subscribed` does not count as a socket that served: the delays keep doubling (50, 100,
    # 200, 400, 800 ms …), where a reset after each would have tried again every 50 ms.
    await asyncio.sleep(2)
    assert 3 <= await page.evaluate("() => window.sockets.length") <= 7
    # UNAUTHORIZED before the server took the token is the connection's, not the subscription's:
    # it is asked again on the next socket, which serves it.
    assert await _closed(page) == {"top": False, "around": False}
    await page.evaluate("() => { window.healthy = true; }")
    await _until(lambda: page.evaluate("() => window.heard.some(([name]) => name === 'around')"), "around served", 10)
    assert await page.evaluate("() => window.heard.filter(([name]) => name === 'around')") == [["around", "update"]]


# A top and a window asked for without a board, on the given transports; the URLs requested kept.
DEFAULT_BOARD = """async (transports) => {
    const { ScoreboardClient } = await import('/static/scoreboard-client.js');
    const client = (window.client = new ScoreboardClient({ transports, pollMs: 200 }));
    window.urls = [];
    const fetch = window.fetch;
    window.fetch = (url, init) => { window.urls.push(String(url)); return fetch(url, init); };
    window.subs = { top: client.leaderboard(), window: client.ranks(undefined, 1, 5) };
    window.last = {};
    for (const [name, sub] of Object.entries(window.subs)) sub.on('update', (value) => { window.last[name] = value; });
    client.connect();
}"""


@pytest.mark.parametrize("transports", [["websocket"], ["sse", "polling"], ["polling"]])
async def test_subscriptions_without_a_board_follow_the_default_one(
    browser: Any, flow: Flow, client: Any, transports: list[str]
) -> None:
    await flow.award("u1", "q1")
    page = await _blank(browser, client)
    await page.evaluate(DEFAULT_BOARD, transports)

    async def shown() -> bool:
        last = await page.evaluate("() => window.last")
        return all(
            name in last and [e["userId"] for e in last[name].get("leaderboard") or last[name]["entries"]] == ["u1"]
            for name in ("top", "window")
        )

    await _until(shown, "both shown")
    await flow.award("u2", "q1", "DEFEAT_BOSS")  # u2 first: the updates are applied

    async def updated() -> bool:
        last = await page.evaluate("() => window.last")
        return [e["userId"] for e in last["top"]["leaderboard"]] == ["u2", "u1"]

    await _until(updated, "the update applied")
    assert await page.evaluate("() => [window.subs.top.board, window.subs.window.board]") == ["global", "global"]
    assert not [url for url in await page.evaluate("() => window.urls") if "undefined" in url or "null" in url]


NOTICES = """async ([token, after]) => {
    const { ScoreboardClient } = await import('/static/scoreboard-client.js');
    const client = (window.client = new ScoreboardClient({ token }));
    window.notices = [];
    window.heard = [];
    window.notes = client.notifications({ after });
    window.notes.on('notice', (notice) => window.notices.push(notice.id));
    window.notes.on('error', (error) => window.heard.push(error.code));
    client.leaderboard('global').on('update', () => window.heard.push('top'));
    client.connect();
}"""


async def _notice_ids(client: Any, user: str) -> list[int]:
    """The ids of the notices the server keeps for `user`, oldest first."""
    resp = await client.get("/api/v1/users/me/notifications", headers={"Authorization": f"Bearer {token_for(user)}"})
    return [n["id"] for n in (await resp.json())["data"]["notifications"]]


async def _kept(client: Any, user: str, n: int) -> bool:
    return len(await _notice_ids(client, user)) >= n


async def test_another_users_token_brings_that_users_notices_from_where_the_caller_asked(
    browser: Any, flow: Flow, client: Any
) -> None:
    for user, quests in (("u1", 3), ("u2", 2), ("u3", 1)):  # a first entry passes nobody
        for n in range(quests):
            await flow.award(user, f"q{n}")
    await flow.award("u3", "boss", "DEFEAT_BOSS")  # 600: passes u1 (300) and u2 (200)
    await flow.award("u2", "boss", "DEFEAT_BOSS")  # 700: passes u3 and u1 again, later
    # (The notices are worked out after the write is answered.)
    await _until(lambda: _kept(client, "u1", 2), "u1's notices kept")
    older, newer = await _notice_ids(client, "u2"), await _notice_ids(client, "u1")
    assert older and newer and min(older) < max(newer)
    page = await _blank(browser, client)
    await page.evaluate(NOTICES, [token_for("u1"), None])
    await _until(lambda: page.evaluate(f"() => window.notices.length === {len(newer)}"), "u1's notices")
    # u2's notices are every kept one (no `after` asked), older ones than u1's last included.
    await page.evaluate(f"() => {{ window.notices = []; window.client.setToken({token_for('u2')!r}); }}")
    await _until(lambda: page.evaluate(f"() => window.notices.length === {len(older)}"), "u2's notices")
    assert await page.evaluate("() => window.notices") == older


async def test_notices_from_now_wait_for_a_token_on_an_anonymous_client(browser: Any, flow: Flow, client: Any) -> None:
    for user in ("u1", "u2", "u3"):  # a first entry passes nobody
        await flow.award(user, "q1")
    await flow.award("u2", "boss", "DEFEAT_BOSS")  # passes u1: a notice from before
    await _until(lambda: _kept(client, "u1", 1), "u1's notice kept")
    page = await _blank(browser, client)
    await page.evaluate(NOTICES, [None, "now"])
    await _until(lambda: page.evaluate("() => window.heard.includes('top')"), "the anonymous client live")
    await asyncio.sleep(0.5)
    assert await page.evaluate("() => [window.notes.closed, window.heard.filter((h) => h !== 'top')]") == [False, []]
    await page.evaluate(f"() => window.client.setToken({token_for('u1')!r})")
    await _until(lambda: page.evaluate("() => window.notes.ready"), "the newest notice read")
    await asyncio.sleep(0.5)  # the socket subscribed again
    await flow.award("u3", "boss", "DEFEAT_BOSS")  # passes u1: a notice from now on
    await _until(lambda: page.evaluate("() => window.notices.length > 0"), "the new notice")
    assert await page.evaluate("() => window.notices") == [max(await _notice_ids(client, "u1"))]


AROUND_POLLED = """async (token) => {
    const { ScoreboardClient } = await import('/static/scoreboard-client.js');
    const client = new ScoreboardClient({ token, transports: ['polling'], pollMs: 200 });
    window.seen = { updates: [] };
    client.around('global', 1).on('update', (value) => window.seen.updates.push(value));
    client.connect();
}"""


@pytest.mark.parametrize("user", [".", ".."])
async def test_an_around_window_is_polled_for_a_user_id_of_dots(
    browser: Any, flow: Flow, client: Any, user: str
) -> None:
    for i, name in enumerate(("u0", user, "u2", "u3")):  # 400, 300, 200, 100
        for n in range(4 - i):
            await flow.award(name, f"q{n}")
    page = await _blank(browser, client)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url) if "/api/v1/" in request.url else None)
    await page.evaluate(AROUND_POLLED, token_for(user))
    await _until(lambda: page.evaluate("() => window.seen.updates.length > 0"), "the window around the user")
    assert await _shown(page) == [(1, "u0", 400), (2, user, 300), (3, "u2", 200)]
    assert not [url for url in requested if "/around" not in url and "/lookup" not in url and "/ranks" not in url]
