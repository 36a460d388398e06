"""Run `python run.py` as a real process on a free port, for restart and kill -9 tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """`python run.py` in a child process; `kill()` sends SIGKILL, like a crash. Its output is
    collected in `log` when it stops: through a pipe, or a file (`log_path`) for a server that
    writes more than a pipe holds while nobody reads it."""

    def __init__(self, env: dict[str, str], *args: str, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.env = {**os.environ, **env}
        self.args = args
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = b""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, str(ROOT / "run.py"), "--port", str(self.port), *self.args]

    def start(self, timeout: float = 15.0) -> ServerProcess:
        if self.log_path is None:
            self.proc = subprocess.Popen(
                self.command(), cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        else:
            with self.log_path.open("wb") as out:  # the child keeps its own descriptor
                self.proc = subprocess.Popen(
                    self.command(), cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
                )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._collect()
                raise RuntimeError(f"server exited: {self.log!r}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not become healthy")

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        data = None if body is None else msgspec.json.encode(body)
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, msgspec.json.decode(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, msgspec.json.decode(err.read())

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self._collect()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._collect()

    def _collect(self) -> None:
        if self.proc is not None:
            self.proc.wait(10)
            if self.proc.stdout and not self.proc.stdout.closed:
                self.log += self.proc.stdout.read()
                self.proc.stdout.close()
            elif self.log_path is not None:
                self.log = self.log_path.read_bytes()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
