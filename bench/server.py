"""Server subprocesses on free loopback ports: the Scoreboard (`run.py`) and the bare baseline app.

`ServerProcess` is the one way the bench and the tests (tests/real_servers.py) start a server,
wait for it, stop it and read its log."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import msgspec

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"
READY_WITHIN = 30.0  # seconds a server may take to become ready
POLL_SECONDS = 0.05
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an HTTP proxy
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
    """A TCP port that is free on the loopback address now."""
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
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def to_toml(tables: dict[str, dict[str, Any]]) -> str:
    """TOML text of one level of tables (dotted names for nested ones, e.g. `actions.X`)."""
    lines: list[str] = []
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in table.items())
        lines.append("")
    return "\n".join(lines)


def bench_config(
    *,
    redis_prefix: str | None,
    token_ttl: int,
    metrics_port: int | None = None,
    boards: dict[str, dict[str, Any]] | None = None,
    actions: dict[str, dict[str, Any]] | None = None,
) -> str:
    """The project's config.toml action catalog with limits lifted and the bench's own Redis prefix
    (and the metrics on, on `metrics_port`). `boards`: the boards declared (None: the one default
    board); `actions`: a catalog instead of config.toml's."""
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
    if metrics_port is not None:
        tables["metrics"] = {"enabled": True, "port": metrics_port}
    for name, board in (boards or {}).items():
        tables[f"boards.{name}"] = dict(board)
    for name, action in (actions if actions is not None else source.get("actions", {})).items():
        tables[f"actions.{name}"] = dict(action)
    return to_toml(tables)


# Every cheat rule at a threshold no bench award reaches (an award sooner than 1 ms after the same
# user's previous one of the action aside): each is checked, none holds.
UNREACHED_RULES: dict[str, Any] = {
    "hold_over_per_hour": 1_000_000,
    "hold_over": {"count": 1_000_000, "window_s": 60},
    "hold_within_s": 0.001,
    "max_score_per_hour": 2**53,
    "velocity": {"window_s": 60, "windows": 12, "min_samples": 1, "z": 1000.0},
}


def ruled_catalog() -> dict[str, dict[str, Any]]:
    """config.toml's action catalog, each action with every cheat rule (UNREACHED_RULES)."""
    source = tomllib.loads((ROOT / "config.toml").read_text())
    return {name: {**action, **UNREACHED_RULES} for name, action in source.get("actions", {}).items()}


def catalog() -> dict[str, int]:
    """Action type -> score, as the server is configured."""
    source = tomllib.loads((ROOT / "config.toml").read_text())
    return {name: int(action["score"]) for name, action in source.get("actions", {}).items()}


class ServerProcess:
    """A server in its own session (so a last-resort SIGKILL reaches its workers and nothing else),
    answering on `url`. The bench and the tests start every server through this class: `start`
    and `stop` block, `astart` and `astop` do the same for a caller on an event loop.

    Ready once `ready_path` answers 200, or once `answers()` is true for a server that speaks
    something else than HTTP. Stopped with `stop_signal`, then SIGKILL to its group after a grace
    period. Its stdout and stderr go to `log_path`, or to a temporary file when none is given (a
    file, never a pipe: a server that writes much would block on a pipe nobody reads)."""

    def __init__(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        *,
        port: int,
        ready_path: str = "/healthz",
        answers: Callable[[], bool] | None = None,
        log_path: Path | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.port = port
        self.ready_path = ready_path
        self.answers = answers or self._answers_http
        self.log_path = log_path
        self.stop_signal = stop_signal
        self.proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None  # this process's copy of the child's output file
        self._kept = b""  # a temporary file's output, kept when the file is closed

    @property
    def url(self) -> str:
        """Its base URL on the loopback address."""
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        """The server's process id (of the supervisor, with `--workers`)."""
        assert self.proc is not None
        return self.proc.pid

    def start(self, within: float = READY_WITHIN) -> Self:
        """Spawn, and wait until it is ready; RuntimeError (with its log's tail) if it exits first
        or is not ready within `within` seconds (then it is stopped)."""
        self._spawn()
        deadline = time.monotonic() + within
        while not self._ready(deadline, within):
            time.sleep(POLL_SECONDS)
        return self

    async def astart(self, within: float = READY_WITHIN) -> Self:
        """`start` without blocking the event loop: the process exists before the first await
        (a profiler can attach to it while it starts); each check runs in a thread."""
        self._spawn()
        deadline = time.monotonic() + within
        while not await asyncio.to_thread(self._ready, deadline, within):  # noqa: ASYNC110 - a process, not a task
            await asyncio.sleep(POLL_SECONDS)
        return self

    def stop(self, grace: float = 10.0) -> int | None:
        """Send `stop_signal`, SIGKILL its whole group after `grace` seconds; its exit code (None
        if it never started)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(self.stop_signal)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # its own group: started with start_new_session
                proc.wait()
        self._release_log()
        return proc.returncode

    async def astop(self, grace: float = 10.0) -> int | None:
        """`stop` without blocking the event loop."""
        return await asyncio.to_thread(self.stop, grace)

    def kill(self) -> None:
        """SIGKILL to the server process alone, like a crash: no shutdown runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._release_log()

    @property
    def log(self) -> bytes:
        """What it wrote to stdout and stderr so far (all of it once it has stopped)."""
        if self.log_path is not None:
            return self.log_path.read_bytes() if self.log_path.exists() else b""
        if self._out is not None:
            fd = self._out.fileno()  # pread: the child shares the file offset, which stays put
            return os.pread(fd, os.fstat(fd).st_size, 0)
        return self._kept

    def log_tail(self, lines: int = 15) -> str:
        """The last `lines` lines of its log."""
        return "\n".join(self.log.decode(errors="replace").splitlines()[-lines:])

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """One JSON request, blocking: the status and the decoded body, for an error status too."""
        data = None if body is None else msgspec.json.encode(body)
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        try:
            with _LOOPBACK.open(req, timeout=5) as resp:
                return resp.status, msgspec.json.decode(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, msgspec.json.decode(err.read())

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def _spawn(self) -> None:
        self._release_log()
        self._kept = b""
        # Open until the server stops (_release_log): the child writes to it meanwhile.
        out = self.log_path.open("wb") if self.log_path is not None else tempfile.TemporaryFile()  # noqa: SIM115
        self._out = out
        self.proc = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def _ready(self, deadline: float, within: float) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            self._release_log()
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
        if self.answers():
            return True
        if time.monotonic() >= deadline:
            self.stop()
            raise RuntimeError(f"{self.name} not ready within {within:.0f} s: {self.log_tail()}")
        return False

    def _answers_http(self) -> bool:
        try:
            with _LOOPBACK.open(self.url + self.ready_path, timeout=1) as resp:
                return bool(resp.status == 200)
        except (OSError, http.client.HTTPException):  # refused, reset, timed out, an error status
            return False

    def _release_log(self) -> None:
        if self._out is not None:
            if self.log_path is None:
                self._kept = self.log
            self._out.close()
            self._out = None


def scoreboard_process(
    workdir: Path,
    *,
    port: int,
    redis_url: str | None,
    database_url: str | None,
    redis_prefix: str | None,
    token_ttl: int,
    workers: int,
    metrics_port: int | None = None,
    boards: dict[str, dict[str, Any]] | None = None,
    actions: dict[str, dict[str, Any]] | None = None,
    name: str = "bench",
) -> ServerProcess:
    """`run.py` with bench secrets, its own SQLite file and config (metrics on `metrics_port`, if
    given; `boards` and `actions` as in `bench_config`). `name` tells apart the files of servers
    that share `workdir` (the default keeps `bench.db`, which bigdata writes)."""
    config_path = workdir / f"{name}-config.toml"
    config_path.write_text(
        bench_config(
            redis_prefix=redis_prefix, token_ttl=token_ttl, metrics_port=metrics_port, boards=boards, actions=actions
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
    env |= {
        "SCOREBOARD_ENV": "production",
        "SCOREBOARD_CONFIG": str(config_path),
        "SCOREBOARD_SQLITE_PATH": str(workdir / f"{name}.db"),
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
    return ServerProcess(
        "scoreboard", command, env, port=port, ready_path="/readyz", log_path=workdir / f"{name}-scoreboard.log"
    )


def baseline_process(workdir: Path, *, port: int, redis_url: str | None, redis_prefix: str) -> ServerProcess:
    """The bare aiohttp app of bench/baseline.py."""
    env = dict(os.environ) | {"BENCH_JWT_SECRET": JWT_SECRET, "BENCH_REDIS_PREFIX": redis_prefix}
    if redis_url:
        env["BENCH_REDIS_URL"] = redis_url
    command = [PYTHON, "-m", "bench.baseline", "--port", str(port)]
    return ServerProcess("baseline", command, env, port=port, ready_path="/hello", log_path=workdir / "baseline.log")
