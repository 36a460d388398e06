"""`run.py --workers 2` with metrics: whichever process answers a scrape, it shows every process's
counts; a worker that dies leaves the live gauges and keeps its counts in the totals."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.mmap_dict import MmapedDict

from app.auth import UserAuth
from app.metrics.export import MULTIPROC_ENV
from app.metrics.multiprocess import shared_values

from .conftest import ACTION_SECRET, JWT_SECRET
from .isolation import REDIS_URL
from .real_servers import free_port, run_py
from .test_metrics import Samples, parse, value

CONFIG = """
[storage]
redis_prefix = "{prefix}"
[limits]
updates_per_minute = 1000
ip_requests_per_minute = 100000
[metrics]
enabled = true
port = {metrics_port}
[actions.COMPLETE_QUEST]
score = 100
"""


def _auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {UserAuth(JWT_SECRET).issue(user, name=user.title())}"}


async def _award(http: aiohttp.ClientSession, url: str, user: str) -> None:
    async with http.post(
        f"{url}/api/v1/actions/initialize",
        json={"actionType": "COMPLETE_QUEST", "actionId": "q1"},
        headers=_auth(user),
    ) as resp:
        token = (await resp.json())["data"]["actionToken"]
    async with http.post(
        f"{url}/api/v1/scoreboard/update", json={"actionToken": token, "actionId": "q1"}, headers=_auth(user)
    ) as resp:
        assert resp.status == 200


async def _until(scrape: Callable[[], Awaitable[Samples]], holds: Callable[[Samples], bool]) -> Samples:
    """Scrape until `holds` (each process flushes its counts once a second); fail after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        try:
            samples = await scrape()
        except aiohttp.ClientConnectionError:
            # A worker just killed: until the kernel has torn its listener down, a connection the
            # port's SO_REUSEPORT group gave it is refused (a scraper tries again next time).
            samples = None
        if samples is not None and holds(samples):
            return samples
        assert time.monotonic() < deadline, "the scrape never showed it"
        await asyncio.sleep(0.2)


def _connections_of(shared: Path, pid: int) -> float:
    """The open WebSocket connections one worker wrote to its file."""
    for key, count, *_ in MmapedDict.read_all_values_from_file(str(shared / f"gauge_livesum_{pid}.db")):
        if '"scoreboard_websocket_connections"' in key:
            return float(count)
    return 0.0


async def _alive(ws: aiohttp.ClientWebSocketResponse) -> bool:
    try:
        msg = await ws.receive(timeout=0.3)
    except TimeoutError:
        return True  # nothing to read on an idle connection that is still open
    return msg.type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


async def test_two_workers_report_one_view(tmp_path: Path, redis_prefix: str) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    (shared / "counter_1.db").write_bytes(b"an earlier run's file")  # emptied at start
    metrics_port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(prefix=redis_prefix, metrics_port=metrics_port))
    env = {
        "SCOREBOARD_CONFIG": str(config),
        "SCOREBOARD_REDIS_URL": REDIS_URL,
        "SCOREBOARD_SQLITE_PATH": str(tmp_path / "shared.db"),
        "SCOREBOARD_JWT_SECRET": JWT_SECRET.decode(),
        "SCOREBOARD_ACTION_SECRET": ACTION_SECRET.decode(),
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
    }
    server = run_py(env, "--workers", "2").start()
    # A new connection per request: the kernel spreads them over both processes (SO_REUSEPORT).
    connector = aiohttp.TCPConnector(force_close=True)
    try:
        async with aiohttp.ClientSession(connector=connector) as http:

            async def scrape() -> Samples:
                async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
                    assert resp.status == 200
                    return parse(await resp.text())

            assert not (shared / "counter_1.db").exists()
            for i in range(8):
                await _award(http, server.url, f"user{i}")
            awards = {"action": "COMPLETE_QUEST", "board": "global"}
            await _until(scrape, lambda s: value(s, "scoreboard_awards_total", **awards) == 8)
            # Each worker writes its live gauges when it first samples them (every few seconds).
            deadline = time.monotonic() + 20
            while True:
                workers = {int(f.stem.rsplit("_", 1)[1]) for f in shared.glob("gauge_livesum_*.db")}
                if len(workers) == 2 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            assert len(workers) == 2
            assert len({int(f.stem.rsplit("_", 1)[1]) for f in shared.glob("counter_*.db")}) == 2  # both awarded
            # A worker adds the users it saw to the shared count when it next samples, not at once.
            await _until(scrape, lambda s: value(s, "scoreboard_active_users") == 8)
            for _ in range(6):  # whichever process answers: the same totals
                samples = await scrape()
                assert value(samples, "scoreboard_awards_total", **awards) == 8
                assert value(samples, "scoreboard_active_users") == 8  # one HyperLogLog in Redis for both
                assert value(samples, "process_resident_memory_bytes") > 0
                assert value(samples, "process_open_fds") > 0

            sockets: list[Any] = []
            for _ in range(6):
                ws = await http.ws_connect(f"{server.url.replace('http', 'ws')}/ws/scoreboard")
                assert (await ws.receive_json(timeout=3))["type"] == "connected"
                sockets.append(ws)
            await _until(scrape, lambda s: value(s, "scoreboard_websocket_connections") == 6)
            cpu = value(await scrape(), "process_cpu_seconds_total")

            held = {pid: _connections_of(shared, pid) for pid in workers}
            assert sum(held.values()) == 6
            victim = max(held, key=lambda pid: held[pid])  # 3 or more of the 6
            os.kill(victim, signal.SIGKILL)
            await asyncio.sleep(0.5)
            open_now = [ws for ws in sockets if await _alive(ws)]
            assert len(open_now) == 6 - held[victim]  # its connections went with it
            samples = await _until(scrape, lambda s: value(s, "scoreboard_websocket_connections") == len(open_now))
            assert value(samples, "scoreboard_awards_total", **awards) == 8  # its counts stay in the totals
            assert value(samples, "process_cpu_seconds_total") >= cpu
            for ws in sockets:
                await ws.close()
    finally:
        server.stop()


def test_a_folder_of_its_own_unless_given() -> None:
    before = os.environ.pop(MULTIPROC_ENV, None)
    try:
        with shared_values() as ended:
            folder = Path(os.environ[MULTIPROC_ENV])
            (folder / "gauge_livesum_4242.db").write_bytes(b"")
            (folder / "counter_4242.db").write_bytes(b"")
            ended(4242)  # its live gauges leave, its counts stay
            assert [f.name for f in folder.iterdir()] == ["counter_4242.db"]
        assert not folder.exists()  # a temporary folder is removed at the end
    finally:
        # shared_values set it for the workers it would start: servers later tests start must not inherit it.
        os.environ.pop(MULTIPROC_ENV, None)
        if before is not None:
            os.environ[MULTIPROC_ENV] = before
