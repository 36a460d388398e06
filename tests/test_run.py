"""The command line: `token`, config errors and a busy port as one line, `serve` flags."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import jwt
import pytest

import run
from app import create_app, drain, jws
from app.auth import UserAuth
from app.config import DEV_JWT_SECRET, Config

from .conftest import JWT_SECRET, make_config
from .isolation import REDIS_URL, schema_dsn
from .real_servers import ROOT


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
    args = run.parser().parse_args(["serve", "--host", "127.0.0.2", "--port", "9999", "--config", "x.toml"])
    seen: list[tuple[str, str, str]] = []

    def load(path: str, env: dict[str, str]) -> Config:
        seen.append((path, env["SCOREBOARD_HOST"], env["SCOREBOARD_PORT"]))
        return make_config(Path("unused.db"))

    monkeypatch.setattr(run, "load_config", load)
    run.load(args)
    assert seen == [("x.toml", "127.0.0.2", "9999")]


def test_token_refuses_production_unless_asked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCOREBOARD_ENV", "production")
    monkeypatch.setenv("SCOREBOARD_JWT_SECRET", "j" * 32)
    monkeypatch.setenv("SCOREBOARD_ACTION_SECRET", "a" * 32)
    config = str(ROOT / "config.toml")
    assert run.main(["--config", config, "token", "x"]) == 2
    assert "--allow-production" in capsys.readouterr().err
    assert run.main(["--config", config, "token", "x", "--allow-production"]) == 0
    assert UserAuth(b"j" * 32).verify(capsys.readouterr().out.strip()).user_id == "x"


def test_token_refuses_when_only_the_identity_provider_signs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        "[auth]\njwks_url = 'https://id.example/jwks.json'\nissuer = 'https://id.example/'\naudience = 'sb'\n"
        "[actions.COMPLETE_QUEST]\nscore = 1\n"
    )
    assert run.main(["--config", str(config), "token", "x"]) == 2
    assert "auth.algorithms does not accept HS256" in capsys.readouterr().err
    config.write_text(config.read_text().replace("audience = 'sb'", "audience = 'sb'\nalgorithms = ['RS256', 'HS256']"))
    assert run.main(["--config", str(config), "token", "x"]) == 0


def test_token_lives_no_longer_than_the_server_accepts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[auth]\nmax_lifetime_seconds = 600\naudience = 'scoreboard'\n[actions.A]\nscore = 1\n")
    assert run.main(["--config", str(config), "token", "x", "--ttl", "601"]) == 2
    assert "auth.max_lifetime_seconds" in capsys.readouterr().err
    assert run.main(["--config", str(config), "token", "x", "--ttl", "600"]) == 0
    token = capsys.readouterr().out.strip()
    assert (
        UserAuth(DEV_JWT_SECRET.encode(), audience="scoreboard", max_lifetime_seconds=600).verify(token).user_id == "x"
    )


@pytest.mark.parametrize("user_id", ["bad id", "", "x" * 101, "élan", "a\n", "a/b"])
def test_token_refuses_a_user_id_the_server_would_refuse(capsys: pytest.CaptureFixture[str], user_id: str) -> None:
    assert run.main(["token", user_id]) == 2
    captured = capsys.readouterr()
    assert "USER_ID: 1 to 100 characters" in captured.err
    assert captured.out == ""
    assert run.main(["token", "x" * 100]) == 0


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["demo"], {"SCOREBOARD_ENV": "production"}, "SCOREBOARD_ENV=production"),
        (["demo", "--host", "0.0.0.0"], {}, "loopback"),
        (["demo", "--players", "0"], {}, "--players: 1 to 1000"),
        (["demo", "--players", "-1"], {}, "--players: 1 to 1000"),
        (["demo", "--players", "100000000"], {}, "--players: 1 to 1000"),
    ],
)
def test_demo_refuses_production_and_reachable_hosts(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    monkeypatch.setenv("SCOREBOARD_JWT_SECRET", "j" * 32)
    monkeypatch.setenv("SCOREBOARD_ACTION_SECRET", "a" * 32)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert run.main(["--config", str(ROOT / "config.toml"), *args]) == 2
    assert message in capsys.readouterr().err


def test_token_roles_make_an_operator(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCOREBOARD_JWT_SECRET", JWT_SECRET.decode())
    monkeypatch.chdir(ROOT)
    assert run.main(["token", "op", "--role", "admin", "--role", "support"]) == 0
    assert UserAuth(JWT_SECRET).verify(capsys.readouterr().out.strip()).roles == {"admin", "support"}
    assert run.main(["token", "player"]) == 0
    token = capsys.readouterr().out.strip()
    assert UserAuth(JWT_SECRET).verify(token).roles == frozenset()
    assert "roles" not in jws.verify(token, lambda _: JWT_SECRET)[1].decode()  # no claim at all, not an empty one


async def test_token_role_opens_the_operator_routes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, aiohttp_client: Any
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[auth]\nadmin_role = 'ops'\n[actions.A]\nscore = 1\n")
    monkeypatch.setenv("SCOREBOARD_JWT_SECRET", JWT_SECRET.decode())
    tokens = {}
    for role in ("ops", "admin"):
        assert run.main(["--config", str(config), "token", "op", "--role", role]) == 0
        tokens[role] = capsys.readouterr().out.strip()
    client = await aiohttp_client(create_app(make_config(tmp_path / "db.sqlite", auth={"admin_role": "ops"})))
    for role, status in (("admin", 403), ("ops", 201)):
        resp = await client.post(
            "/api/v1/admin/boards", json={"id": "weekly"}, headers={"Authorization": f"Bearer {tokens[role]}"}
        )
        assert resp.status == status, await resp.text()


@pytest.mark.parametrize("command", [[], ["demo"]], ids=["serve", "demo"])
def test_a_busy_port_is_one_clear_line(tmp_path: Path, command: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                str(ROOT / "run.py"),
                *command,
                "--port",
                str(port),
                "--config",
                str(ROOT / "config.toml"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            cwd=tmp_path,
            env={**os.environ, "SCOREBOARD_SQLITE_PATH": str(tmp_path / "db.sqlite")},
        )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"cannot listen on 127.0.0.1:{port}: the port is in use; choose another port with --port or "
        "SCOREBOARD_PORT (or another address with --host)"
    ]
    assert not (tmp_path / "db.sqlite").exists()  # refused before anything started


async def test_a_port_taken_during_the_start_up_is_the_same_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        serving = drain.serve_until_stopped(
            create_app(make_config(tmp_path / "db.sqlite")),
            host="127.0.0.1",
            port=port,
            reuse_port=False,
            drain_seconds=2,
            announce=print,
        )
        with pytest.raises(drain.ListenError, match=f"^cannot listen on 127.0.0.1:{port}: the port is in use;"):
            await serving


def _run_py(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """run.py in a folder of its own, with this environment added; its exit and output."""
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
    )


def test_a_metrics_port_that_is_taken_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken, socket.socket() as free:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        free.bind(("127.0.0.1", 0))
        metrics, port = taken.getsockname()[1], free.getsockname()[1]
        shipped = (ROOT / "config.toml").read_text()
        config = shipped.replace("enabled = false           # Prometheus", f"enabled = true\nport = {metrics}  #", 1)
        (tmp_path / "config.toml").write_text(config.replace("port = 9464\n", "", 1))
        free.close()
        result = _run_py(tmp_path, "--port", str(port), env={"SCOREBOARD_SQLITE_PATH": str(tmp_path / "db.sqlite")})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"cannot listen on 127.0.0.1:{metrics}: the port is in use; choose another with metrics.port "
        "(or metrics.host) in the configuration"
    ]
    assert not (tmp_path / "db.sqlite").exists()  # refused before anything started


def test_a_database_that_cannot_be_opened_is_one_clear_line(tmp_path: Path, pg_schema: str) -> None:
    (tmp_path / "text.db").write_text("not a database\n" * 300)
    (tmp_path / "folder.db").mkdir()
    nowhere = schema_dsn(pg_schema).replace("127.0.0.1:5432/", "127.0.0.1:5432/no_such_database_here")
    cases = {
        "text.db": ({"SCOREBOARD_SQLITE_PATH": str(tmp_path / "text.db")}, f"({tmp_path / 'text.db'}): file is not"),
        "folder.db": ({"SCOREBOARD_SQLITE_PATH": str(tmp_path / "folder.db")}, "unable to open database file"),
        "no database": ({"SCOREBOARD_DATABASE_URL": nowhere, "SCOREBOARD_REDIS_URL": REDIS_URL}, "(PostgreSQL): "),
    }
    for name, (env, said) in cases.items():
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
        result = _run_py(tmp_path, "--port", str(port), "--config", str(ROOT / "config.toml"), env=env)
        lines = result.stderr.splitlines()
        assert result.returncode == 1, (name, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("cannot open the database (") and said in lines[0], name


def test_a_config_path_that_cannot_be_read_is_one_clear_line(tmp_path: Path) -> None:
    for path, reason in ((str(tmp_path), "Is a directory"), (str(tmp_path / ("x" * 5000)), "File name too long")):
        result = _run_py(tmp_path, "--config", path, "token", "alice")
        assert result.returncode == 2
        assert result.stderr.splitlines() == [f"config error: {path}: cannot be read ({reason})"]


def test_a_secret_of_any_bytes_signs(tmp_path: Path) -> None:
    # The environment may hold bytes that are not UTF-8: they are the key, as they are.
    secret = b"\xff\xfe" + b"k" * 40
    result = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "--config", str(ROOT / "config.toml"), "token", "alice"],
        capture_output=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={**os.environb, b"SCOREBOARD_JWT_SECRET": secret},
    )
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.decode().strip(), secret, algorithms=["HS256"])
    assert claims["sub"] == "alice"


def test_workers_that_cannot_open_the_database_stop_in_one_line_each(tmp_path: Path) -> None:
    # Not restarted for ever: another worker would not open it either.
    (tmp_path / "text.db").write_text("not a database\n" * 300)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {"SCOREBOARD_SQLITE_PATH": str(tmp_path / "text.db"), "SCOREBOARD_REDIS_URL": REDIS_URL}
    result = _run_py(tmp_path, "--port", str(port), "--config", str(ROOT / "config.toml"), "--workers", "2", env=env)
    assert result.returncode == 1
    said = [line for line in result.stderr.splitlines() if not line.startswith("{")]  # (the JSON log lines)
    assert said and set(said) == {f"cannot open the database ({tmp_path / 'text.db'}): file is not a database"}
    assert "Traceback" not in result.stderr
