"""Server subprocesses: the Scoreboard (`run.py`) and the bare baseline app, on free loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import IO, Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"
JWT_SECRET = "bench-user-jwt-secret-0123456789abcdef-not-for-prod"
ACTION_SECRET = "bench-action-secret-0123456789abcdef-not-for-prod!"
# High enough that one loopback IP and the bench users never hit a limit: the benchmark
# measures the service, not its rate limiter refusing it (up to 10,000 WebSockets and more
# from a few loopback addresses, all opened at once).
BENCH_LIMITS = {
    "updates_per_minute": 1_000_000,
    "initializes_per_minute": 1_000_000,
    "tokens_per_user": 1_000_000,
    "ip_requests_per_minute": 1_000_000_000,
    "ws_connections_per_ip": 1_000_000,
    "ws_handshakes_per_ip_per_minute": 1_000_000_000,
    "ws_connections_per_process": 1_000_000,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def to_toml(tables: dict[str, dict[str, Any]]) -> str:
    """TOML text of one level of tables (dotted names for nested ones, e.g. `actions.X`)."""
    lines: list[str] = []
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in table.items())
        lines.append("")
    return "\n".join(lines)


def bench_config(*, redis_prefix: str | None, token_ttl: int) -> str:
    """The project's config.toml action catalog with limits lifted and the bench's own Redis prefix."""
    source = tomllib.loads((ROOT / "config.toml").read_text())
    source_limits = source.get("limits", {})
    tables: dict[str, dict[str, Any]] = {
        "limits": {
            **BENCH_LIMITS,
            "ws_connections_per_user": source_limits.get("ws_connections_per_user", 5),
        },
        "tokens": {"ttl_seconds": token_ttl},
    }
    if redis_prefix is not None:
        tables["storage"] = {"redis_prefix": redis_prefix}
    for name, action in source.get("actions", {}).items():
        tables[f"actions.{name}"] = dict(action)
    return to_toml(tables)


def catalog() -> dict[str, int]:
    """Action type -> score, as the server is configured."""
    source = tomllib.loads((ROOT / "config.toml").read_text())
    return {name: int(action["score"]) for name, action in source.get("actions", {}).items()}


class ServerProcess:
    """A server in its own process group, logging to a file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: Path, ready_path: str) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log_path = log_path
        self.ready_path = ready_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, url: str, within: float = 30.0) -> None:
        """Start and wait until `ready_path` answers 200."""
        self._spawn()
        assert self.proc is not None
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(url + self.ready_path) as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        await self.stop()
        raise RuntimeError(f"{self.name} not ready within {within:.0f} s: {self.log_tail()}")

    def _spawn(self) -> None:
        # Its own session, so a last-resort SIGKILL reaches its workers and nothing else.
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM (graceful), SIGKILL to the whole group after `grace` seconds; the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110 - a process, not a task
                await asyncio.sleep(0.05)
        if proc.poll() is None:
            # Only this server's own group: it was started with start_new_session.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return proc.returncode


def scoreboard_process(
    workdir: Path,
    *,
    port: int,
    redis_url: str | None,
    database_url: str | None,
    redis_prefix: str | None,
    token_ttl: int,
    workers: int,
) -> ServerProcess:
    """`run.py` with bench secrets, its own SQLite file and config."""
    config_path = workdir / "bench-config.toml"
    config_path.write_text(bench_config(redis_prefix=redis_prefix, token_ttl=token_ttl))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
    env |= {
        "SCOREBOARD_ENV": "production",
        "SCOREBOARD_CONFIG": str(config_path),
        "SCOREBOARD_SQLITE_PATH": str(workdir / "bench.db"),
        "SCOREBOARD_JWT_SECRET": JWT_SECRET,
        "SCOREBOARD_ACTION_SECRET": ACTION_SECRET,
    }
    if redis_url:
        env["SCOREBOARD_REDIS_URL"] = redis_url
    if database_url:
        env["SCOREBOARD_DATABASE_URL"] = database_url
    command = [PYTHON, str(ROOT / "run.py"), "--host", HOST, "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    return ServerProcess("scoreboard", command, env, workdir / "scoreboard.log", "/readyz")


def baseline_process(workdir: Path, *, port: int, redis_url: str | None, redis_prefix: str) -> ServerProcess:
    """The bare aiohttp app of bench/baseline.py."""
    env = dict(os.environ) | {"BENCH_JWT_SECRET": JWT_SECRET, "BENCH_REDIS_PREFIX": redis_prefix}
    if redis_url:
        env["BENCH_REDIS_URL"] = redis_url
    command = [PYTHON, "-m", "bench.baseline", "--port", str(port)]
    return ServerProcess("baseline", command, env, workdir / "baseline.log", "/hello")
