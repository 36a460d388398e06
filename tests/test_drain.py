"""The graceful drain of a real `run.py` on SIGTERM and SIGINT: it stops accepting, answers the
request in flight, closes every WebSocket with 1012 and exits within `server.drain_seconds`.

The request in flight is made deterministic: the test holds the SQLite file's write lock, so an
award waits in its transaction while the process drains, and is let go after the signal. (A request
still being received is not in flight: aiohttp reads nothing more once its shutdown begins, so a
body that is only half there gets no answer, and its client retries.)"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import WSMsgType

from app import create_app, drain
from app.api.keys import HUB
from app.auth import UserAuth
from app.errors import CLOSE_SERVICE_RESTART

from .conftest import ACTION_SECRET, JWT_SECRET, MakeClient, make_config
from .live_client import WS, recv, recv_type
from .real_servers import ServerProcess, free_port, run_py

CONFIG = """
[server]
drain_seconds = {drain}
[actions.COMPLETE_QUEST]
score = 100
"""
BEARER = UserAuth(JWT_SECRET).issue("alice", name="Alice")
EXIT_SLACK_SECONDS = 1.0  # a process's own exit (the interpreter's teardown) on a busy machine


def _server(tmp_path: Path, *, drain_seconds: float) -> ServerProcess:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(drain=drain_seconds))
    env = {
        "SCOREBOARD_ENV": "test",
        "SCOREBOARD_CONFIG": str(config),
        "SCOREBOARD_SQLITE_PATH": str(tmp_path / "scoreboard.db"),
        "SCOREBOARD_REDIS_URL": "",
        "SCOREBOARD_DATABASE_URL": "",
        "SCOREBOARD_JWT_SECRET": JWT_SECRET.decode(),
        "SCOREBOARD_ACTION_SECRET": ACTION_SECRET.decode(),
    }
    return run_py(env)


@contextlib.contextmanager
def _write_lock(db: Path) -> Iterator[None]:
    """Hold the SQLite file's write lock: an award reaches its transaction and waits there (the
    server waits up to 5 s for the lock), so it is in flight for as long as this is held."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
    finally:
        conn.close()  # rolls back


async def _update(http: aiohttp.ClientSession, server: ServerProcess, token: str) -> tuple[int, dict[str, Any]] | None:
    """The update's status and body, or None when the connection ended without an answer."""
    try:
        async with http.post(
            server.url + "/api/v1/scoreboard/update",
            json={"actionToken": token, "actionId": "q1"},
            headers={"Authorization": f"Bearer {BEARER}"},
        ) as resp:
            return resp.status, msgspec.json.decode(await resp.read())
    except aiohttp.ClientError:
        return None


def _token(server: ServerProcess) -> str:
    status, body = server.request(
        "POST",
        "/api/v1/actions/initialize",
        {"actionType": "COMPLETE_QUEST", "actionId": "q1"},
        {"Authorization": f"Bearer {BEARER}"},
    )
    assert status == 200, body
    token: str = body["data"]["actionToken"]
    return token


async def _refused(port: int, within: float = 3.0) -> bool:
    """Whether new connections to the port are refused (its listener closed) within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return True
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.02)
    return False


async def _exit_code(server: ServerProcess, within: float) -> int | None:
    """The exit status once the process ends; None if it is still there after `within` seconds."""
    assert server.proc is not None
    try:
        return await asyncio.to_thread(server.proc.wait, within)
    except subprocess.TimeoutExpired:
        return None


def _score(tmp_path: Path) -> Any:
    with _server(tmp_path, drain_seconds=5) as again:
        status, body = again.request("GET", "/api/v1/users/alice/score", headers={"Authorization": f"Bearer {BEARER}"})
    assert status == 200, body
    return body["data"]["score"]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_stop_signal_answers_the_request_in_flight_and_closes_websockets_with_1012(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    server = _server(tmp_path, drain_seconds=5).start()
    try:
        token = _token(server)
        async with aiohttp.ClientSession() as http:
            viewer = await http.ws_connect(server.url.replace("http", "ws") + WS)
            await viewer.send_json({"type": "subscribe", "channel": "leaderboard"})
            await recv_type(viewer, "leaderboard_update")
            with _write_lock(tmp_path / "scoreboard.db"):
                update = asyncio.create_task(_update(http, server, token))
                await asyncio.sleep(0.3)  # the award waits for the lock
                assert server.proc is not None
                signalled = time.monotonic()
                server.proc.send_signal(stop_signal)

                msg = await viewer.receive(timeout=3)
                assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, CLOSE_SERVICE_RESTART, "service restart")
                assert await _refused(server.port), "the listener was not closed"
                server.proc.send_signal(stop_signal)  # a second signal changes nothing: the drain goes on
                await asyncio.sleep(0.2)
                assert not update.done()
            answer = await asyncio.wait_for(update, 5)
        assert answer is not None and answer[0] == 200 and answer[1]["data"]["newScore"] == 100, answer
        assert await _exit_code(server, 5 + EXIT_SLACK_SECONDS) == 0, server.log_tail()
        assert time.monotonic() - signalled < 5 + EXIT_SLACK_SECONDS
        assert b"draining, exiting within 5.0 s" in server.log
        assert b"during the drain: ignored" in server.log
    finally:
        server.stop()
    assert _score(tmp_path) == 100  # the answered award is committed


async def test_the_deadline_cuts_off_what_does_not_finish(tmp_path: Path) -> None:
    """An award stuck behind the write lock and a WebSocket client that never answers the close
    do not hold the process past `drain_seconds`: the watchdog ends it, and the award that got no
    answer was not made (its token still awards once, as after a crash)."""
    server = _server(tmp_path, drain_seconds=2).start()
    try:
        token = _token(server)
        mute = socket.create_connection(("127.0.0.1", server.port))  # upgrades, then never reads again
        mute.sendall(
            f"GET {WS} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        async with aiohttp.ClientSession() as http:
            with _write_lock(tmp_path / "scoreboard.db"):
                update = asyncio.create_task(_update(http, server, token))
                await asyncio.sleep(0.3)
                assert server.proc is not None
                signalled = time.monotonic()
                server.proc.send_signal(signal.SIGTERM)
                code = await _exit_code(server, 2 + EXIT_SLACK_SECONDS)
                took = time.monotonic() - signalled
                assert await asyncio.wait_for(update, 1) is None  # cut off without an answer
        mute.close()
        assert code is not None, "still running after the deadline"
        assert took < 2 + EXIT_SLACK_SECONDS
        assert code == drain.EXIT_CUT_SHORT and b"the drain took longer than 2.0 s" in server.log, server.log_tail()
    finally:
        server.stop()
    with _server(tmp_path, drain_seconds=5) as again:
        status, body = again.request(
            "POST",
            "/api/v1/scoreboard/update",
            {"actionToken": token, "actionId": "q1"},
            {"Authorization": f"Bearer {BEARER}"},
        )
        assert status == 200 and body["data"]["newScore"] == 100, body


async def test_serve_until_stopped_in_this_process(db_path: Path) -> None:
    """The same path in the test's own process (the real ones above are not in the coverage): a
    SIGTERM to this process drains the app; the handlers are given back afterwards."""
    lines: list[str] = []
    watchdogs: list[drain.Watchdog] = []
    ended: list[int] = []

    def watchdog(seconds: float) -> drain.Watchdog:
        watchdogs.append(drain.Watchdog(seconds, end=ended.append))
        return watchdogs[-1]

    port = free_port()
    gc.unfreeze()  # as in a fresh process
    thresholds = gc.get_threshold()
    serving = asyncio.create_task(
        drain.serve_until_stopped(
            create_app(make_config(db_path)),
            host="127.0.0.1",
            port=port,
            reuse_port=False,
            drain_seconds=2,
            announce=lines.append,
            watchdog=watchdog,
        )
    )
    try:
        while not lines:
            assert not serving.done()
            await asyncio.sleep(0.02)
        assert lines == [f"======== Running on http://127.0.0.1:{port} ========\n(Press CTRL+C to quit)"]
        assert gc.get_freeze_count() > 0  # what start-up built is out of the collector's way
        async with aiohttp.ClientSession() as http:
            viewer = await http.ws_connect(f"ws://127.0.0.1:{port}{WS}")
            await recv(viewer)
            os.kill(os.getpid(), signal.SIGTERM)
            msg = await viewer.receive(timeout=3)
            assert (msg.type, msg.data) == (WSMsgType.CLOSE, CLOSE_SERVICE_RESTART)
            os.kill(os.getpid(), signal.SIGINT)  # during the drain: ignored
        await asyncio.wait_for(serving, 3)
        assert len(watchdogs) == 1 and ended == []
    finally:
        for dog in watchdogs:
            dog.cancel()
        serving.cancel()
        gc.unfreeze()  # this process goes on with other tests, as it was
        gc.set_threshold(*thresholds)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # given back


def test_settling_the_heap_collects_garbage_first_then_freezes_the_rest() -> None:
    class Node:
        other: object = None

    garbage = Node()
    garbage.other = garbage  # a cycle nothing refers to: only the collector frees it
    gone = weakref.ref(garbage)
    del garbage
    gc.unfreeze()
    thresholds = gc.get_threshold()
    try:
        drain.settle_heap()
        assert gone() is None  # collected, not frozen
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (drain.YOUNG_COLLECTION_AT, *thresholds[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_handler_time_leaves_a_second_for_the_storage() -> None:
    assert drain.handler_seconds(10) == 9
    assert drain.handler_seconds(2) == 1


def test_watchdog_ends_the_process_at_the_deadline() -> None:
    ended: list[int] = []
    fired = threading.Event()

    def end(status: int) -> None:
        ended.append(status)
        fired.set()

    drain.Watchdog(0.05, end=end).start()
    assert fired.wait(5) and ended == [drain.EXIT_CUT_SHORT]

    cancelled = drain.Watchdog(0.05, end=end)
    cancelled.start()
    cancelled.cancel()
    time.sleep(0.2)
    assert ended == [drain.EXIT_CUT_SHORT]


async def test_a_connection_arriving_during_the_drain_is_closed_with_1012(make_client: MakeClient) -> None:
    client = await make_client()
    before = await client.ws_connect(WS)
    await recv(before)
    client.app[HUB].drain(within=1)
    late = await client.ws_connect(WS)  # accepted before the listener closed, answered after
    for ws in (before, late):
        msg = await ws.receive(timeout=3)
        assert (msg.type, msg.data) == (WSMsgType.CLOSE, CLOSE_SERVICE_RESTART)
    await client.app[HUB].finished()


def test_reuse_port_needs_redis(tmp_path: Path) -> None:
    server = _server(tmp_path, drain_seconds=5)
    result = subprocess.run(
        [*server.command, "--reuse-port"], env=server.env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2 and "--reuse-port" in result.stderr and "SCOREBOARD_REDIS_URL" in result.stderr
