"""The command line: `token`, config errors as one line, `serve` flags."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import run
from app.auth import UserAuth

from .conftest import JWT_SECRET
from .server import ROOT


def test_token_command_prints_verifiable_jwt(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCOREBOARD_JWT_SECRET", JWT_SECRET.decode())
    monkeypatch.chdir(ROOT)
    assert run.main(["token", "player-7", "--name", "Seven", "--ttl", "60"]) == 0
    principal = UserAuth(JWT_SECRET).verify(capsys.readouterr().out.strip())
    assert principal.user_id == "player-7" and principal.name == "Seven"


def test_bad_config_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[actions.COMPLETE_QUEST]\nscore = -1\n")
    result = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["config error: actions.COMPLETE_QUEST.score: Expected `int` >= 0"]


def test_production_refuses_default_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCOREBOARD_ENV", "production")
    monkeypatch.delenv("SCOREBOARD_JWT_SECRET", raising=False)
    assert run.main(["--config", str(ROOT / "config.toml"), "token", "x"]) == 2


def test_host_port_flags_override(monkeypatch: pytest.MonkeyPatch) -> None:
    args = run._parser().parse_args(["serve", "--host", "127.0.0.2", "--port", "9999", "--config", "x.toml"])
    monkeypatch.setattr(run, "load_config", lambda path, env: (path, env["SCOREBOARD_HOST"], env["SCOREBOARD_PORT"]))
    assert run._load(args) == ("x.toml", "127.0.0.2", "9999")
