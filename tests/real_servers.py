"""Real servers a test starts, stops and kills: `python run.py` on a free port, a private
redis-server, and a TCP proxy that can cut connections to the shared PostgreSQL. Nothing here
imitates Redis or PostgreSQL.

Spawning, waiting until ready, stopping and the log are bench/server.py's `ServerProcess`,
which the benchmark uses too; this module only says what the tests run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest
import redis

from bench.server import ROOT, ServerProcess, free_port

__all__ = ["REDIS_SERVER", "ROOT", "RedisServer", "ServerProcess", "TcpProxy", "free_port", "run_py"]

REDIS_SERVER = shutil.which("redis-server")


def run_py(env: dict[str, str], *args: str, port: int | None = None, log_path: Path | None = None) -> ServerProcess:
    """`python run.py --port PORT *args` with `env` over this process's environment, not started
    yet: ready once /healthz answers, stopped with SIGINT (as by Ctrl+C), its output in `log`."""
    port = port or free_port()
    return ServerProcess(
        "run.py",
        [sys.executable, str(ROOT / "run.py"), "--port", str(port), *args],
        {**os.environ, **env},
        port=port,
        ready_path="/healthz",
        log_path=log_path,
        stop_signal=signal.SIGINT,
    )


class RedisServer:
    """A redis-server of the test's own, on a free port, without persistence (a restart empties it)."""

    def __init__(self) -> None:
        if REDIS_SERVER is None:
            pytest.fail("redis-server is not installed")
        self.port = free_port()
        self.process = ServerProcess(
            "redis-server",
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            dict(os.environ),
            port=self.port,
            answers=self._pings,
            stop_signal=signal.SIGKILL,  # nothing to keep: no persistence
        )

    @property
    def url(self) -> str:
        """Its URL, database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start it (again, after `stop`, on the same port) and wait until it answers PING."""
        self.process.start(within=10)
        return self

    def stop(self) -> None:
        """Kill it: its keys are gone."""
        self.process.stop()

    def client(self) -> redis.Redis:
        """A blocking client of it."""
        return redis.Redis(port=self.port)

    def _pings(self) -> bool:
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False
        finally:
            client.close()


class TcpProxy:
    """Forwards a local port to a server; `cut()` drops every connection and refuses new ones."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> TcpProxy:
        """Listen (again, after `cut`, on the same port)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def cut(self) -> None:
        """Stop listening and abort every forwarded connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


# A run.py configuration for tests that drive real processes hard (crashes, backups, restarts):
# every limit lifted so none answers for the test, WARNING so the output stays small.
PROCESS_CONFIG = """
[storage]
redis_prefix = "{prefix}"
[limits]
updates_per_minute = 1000000
initializes_per_minute = 1000000
tokens_per_user = 1000000
ip_requests_per_minute = 1000000000
ws_connections_per_ip = 100000
ws_handshakes_per_ip_per_minute = 1000000000
[log]
level = "WARNING"
[actions.COMPLETE_QUEST]
score = 100
[actions.DEFEAT_BOSS]
score = 37
"""
PROCESS_SCORES = {"COMPLETE_QUEST": 100, "DEFEAT_BOSS": 37}  # the catalog of PROCESS_CONFIG
