"""Configuration: the file, the environment, and start-up refusals that name the key."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from pathlib import Path

import pytest

import run
from app.config import DEV_ACTION_SECRET, DEV_JWT_SECRET, ConfigError, load_config
from app.settings import CountWindow, PositiveCountWindow, VelocitySettings

GOOD = """
[server]
port = 9000
[actions.COMPLETE_QUEST]
score = 100
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_and_file(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD), {})
    assert config.server.port == 9000 and config.server.host == "127.0.0.1"
    assert config.actions["COMPLETE_QUEST"].score == 100
    assert config.tokens.ttl_seconds == 300 and config.limits.updates_per_minute == 10
    assert config.storage.synchronous == "FULL" and not config.production


def test_environment_overrides(tmp_path: Path) -> None:
    env = {
        "SCOREBOARD_HOST": "0.0.0.0",
        "SCOREBOARD_PORT": "9100",
        "SCOREBOARD_SQLITE_PATH": "/tmp/x.db",
        "SCOREBOARD_REDIS_URL": "redis://127.0.0.1:6379/3",
        "SCOREBOARD_JWT_SECRET": "j" * 40,
        "SCOREBOARD_ACTION_SECRET": "a" * 40,
        "SCOREBOARD_ACTION_PREVIOUS_SECRETS": "old1,old2",
    }
    config = load_config(_write(tmp_path, GOOD), env)
    assert (config.server.host, config.server.port) == ("0.0.0.0", 9100)
    assert config.storage.sqlite_path == "/tmp/x.db" and config.storage.redis_url.endswith("/3")
    assert config.secrets.jwt == b"j" * 40 and config.secrets.action_previous == (b"old1", b"old2")


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    assert load_config(None, {"SCOREBOARD_CONFIG": str(path)}).server.port == 9000


def test_secrets_hidden_from_repr(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD), {"SCOREBOARD_JWT_SECRET": "s3cr3t-value-here" * 2})
    assert "s3cr3t" not in repr(config)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (GOOD + "\n[server.extra]\nx = 1\n", "server"),
        (GOOD + "\nbogus = 1\n", "bogus"),
        ("[actions.COMPLETE_QUEST]\nscore = -5\n", "actions.COMPLETE_QUEST.score"),
        ("[actions.COMPLETE_QUEST]\nscore = 'lots'\n", "actions.COMPLETE_QUEST.score"),
        ("[actions.COMPLETE_QUEST]\nscore = 1\nbonus = 2\n", "bonus"),
        ("[actions.COMPLETE_QUEST]\nscore = 1\nattest = 'yes'\n", "actions.COMPLETE_QUEST.attest"),
        ("[actions.COMPLETE_QUEST]\nscore = 1\nhold_over_per_hour = -1\n", "actions.COMPLETE_QUEST.hold_over_per_hour"),
        (
            "[actions.COMPLETE_QUEST]\nscore = 1\nhold_over_per_hour = 1.5\n",
            "actions.COMPLETE_QUEST.hold_over_per_hour",
        ),
        (
            "[actions.COMPLETE_QUEST]\nscore = 1\nhold_over_per_hour = '5'\n",
            "actions.COMPLETE_QUEST.hold_over_per_hour",
        ),
        *(
            (f"[actions.COMPLETE_QUEST]\nscore = 1\n{line}\n", key)
            for line, key in [
                ("hold_over = { count = -1, window_s = 60 }", "actions.COMPLETE_QUEST.hold_over.count"),
                ("hold_over = { count = 5, window_s = 0 }", "actions.COMPLETE_QUEST.hold_over.window_s"),
                ("hold_over = { count = 5 }", "actions.COMPLETE_QUEST.hold_over"),
                ("hold_over = { count = 5, window_s = 60, per = 1 }", "per"),
                ("hold_over = 5", "actions.COMPLETE_QUEST.hold_over"),
                ("hold_within_s = 0", "actions.COMPLETE_QUEST.hold_within_s"),
                ("hold_within_s = 'soon'", "actions.COMPLETE_QUEST.hold_within_s"),
                ("max_score_per_hour = -1", "actions.COMPLETE_QUEST.max_score_per_hour"),
                ("max_score_per_hour = 9007199254740993", "actions.COMPLETE_QUEST.max_score_per_hour"),
                ("velocity = { z = 0 }", "actions.COMPLETE_QUEST.velocity.z"),
                ("velocity = { windows = 1 }", "actions.COMPLETE_QUEST.velocity.windows"),
                ("velocity = { sigma = 3 }", "sigma"),
                ("velocity = { windows = 3, min_samples = 4 }", "actions.COMPLETE_QUEST.velocity.min_samples"),
                ("rate_limit = { count = 0, window_s = 60 }", "actions.COMPLETE_QUEST.rate_limit.count"),
                ("rate_limit = { count = 5, window_s = 86401 }", "actions.COMPLETE_QUEST.rate_limit.window_s"),
                ("ratelimit = { count = 5, window_s = 60 }", "ratelimit"),
            ]
        ),
        (GOOD + "\n[limits]\nheld_backoff_seconds = -1\n", "limits.held_backoff_seconds"),
        (
            GOOD + "\n[limits]\nheld_backoff_seconds = 600\nheld_backoff_max_seconds = 60\n",
            "limits.held_backoff_max_seconds",
        ),
        # An action nobody may attest could never be awarded.
        ("[actions.COMPLETE_QUEST]\nscore = 1\nattest = true\n", "actions.COMPLETE_QUEST.attest"),
        ('[actions."bad name"]\nscore = 1\n', "actions"),
        ("[server]\nport = 8080\n", "actions"),
        ("[actions]\n", "actions"),
        ("this is = not toml [", "not valid TOML"),
        (GOOD + "\n[tokens]\nttl_seconds = 0\n", "tokens.ttl_seconds"),
        (GOOD + "\n[limits]\nupdates_per_minute = 0\n", "limits.updates_per_minute"),
        (GOOD + "\n[storage]\nsynchronous = 'OFF'\n", "storage.synchronous"),
        (GOOD.replace("port = 9000", "trusted_proxies = ['not-an-ip']"), "server.trusted_proxies"),
    ],
)
def test_bad_file_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text), {})
    message = str(info.value)
    assert key in message and "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml", {})


def test_bad_port_and_env_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SCOREBOARD_PORT"):
        load_config(_write(tmp_path, GOOD), {"SCOREBOARD_PORT": "http"})
    with pytest.raises(ConfigError, match="SCOREBOARD_ENV"):
        load_config(_write(tmp_path, GOOD), {"SCOREBOARD_ENV": "prod"})


STRONG = {"SCOREBOARD_JWT_SECRET": "j" * 32, "SCOREBOARD_ACTION_SECRET": "a" * 32}


@pytest.mark.parametrize(
    ("env", "var"),
    [
        ({}, "SCOREBOARD_JWT_SECRET"),
        ({"SCOREBOARD_JWT_SECRET": "j" * 32}, "SCOREBOARD_ACTION_SECRET"),
        ({**STRONG, "SCOREBOARD_JWT_SECRET": "short"}, "SCOREBOARD_JWT_SECRET"),
        ({**STRONG, "SCOREBOARD_ACTION_SECRET": DEV_ACTION_SECRET}, "SCOREBOARD_ACTION_SECRET"),
        ({**STRONG, "SCOREBOARD_ACTION_SECRET": "j" * 32}, "SCOREBOARD_ACTION_SECRET"),
    ],
)
def test_production_refuses_weak_secrets(tmp_path: Path, env: dict[str, str], var: str) -> None:
    with pytest.raises(ConfigError, match=var):
        load_config(_write(tmp_path, GOOD), {"SCOREBOARD_ENV": "production", **env})


def test_production_accepts_strong_secrets(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, GOOD), {"SCOREBOARD_ENV": "production", **STRONG}).production


def test_shipped_config_is_valid() -> None:
    config = load_config(Path(__file__).parent.parent / "config.toml", {})
    assert "COMPLETE_QUEST" in config.actions
    assert list(config.boards) == ["global"] and config.services == {}  # the examples stay comments


def test_shipped_config_examples_work_once_uncommented(tmp_path: Path) -> None:
    shipped = (Path(__file__).parent.parent / "config.toml").read_text()
    # A commented table header or `key = value` line of the examples; prose and indented hints stay out.
    example = re.compile(r"^# (\[[A-Za-z_.\-]+\]|[a-z0-9_]+ = .*)$")
    lines = [line[2:] if example.match(line) else line for line in shipped.splitlines()]
    assert sum(line != old for line, old in zip(lines, shipped.splitlines(), strict=True)) >= 10
    key_hash = hashlib.sha256(b"a-key-of-this-test-only").hexdigest()
    text = "\n".join(lines).replace("REPLACE-WITH-THE-SHA256-OF-YOUR-KEY", key_hash)
    text = text.replace("\n[actions.COMPLETE_QUEST]\n", '\n[actions.COMPLETE_QUEST]\nboards = ["global", "weekly"]\n')
    config = load_config(_write(tmp_path, text), {})
    assert list(config.boards) == ["global", "weekly", "trial"]
    assert config.boards["weekly"].reset == "weekly"
    trial = config.boards["trial"]
    assert (trial.order, trial.operator, trial.format) == ("asc", "best", "duration_ms")
    assert config.actions["COMPLETE_QUEST"].boards == ("global", "weekly")
    service = config.services["race-server"]
    assert (service.key_sha256, service.scopes, service.boards) == (
        key_hash,
        ("scores:write", "actions:attest"),
        ("trial",),
    )
    assert config.actions["WIN_RACE"].attest and not config.actions["COMPLETE_QUEST"].attest
    assert (config.actions["OPEN_CHEST"].hold_over_per_hour, config.actions["COMPLETE_QUEST"].hold_over_per_hour) == (
        20,
        None,
    )
    chest = config.actions["OPEN_CHEST"]
    assert (chest.hold_over, chest.hold_within_s, chest.max_score_per_hour, chest.rate_limit) == (
        CountWindow(count=5, window_s=60),
        2.0,
        150,
        PositiveCountWindow(count=30, window_s=60),
    )
    assert chest.velocity == VelocitySettings(window_s=300, windows=12, min_samples=4, z=3.0)
    assert (config.limits.held_backoff_seconds, config.limits.held_backoff_max_seconds) == (0, 3600)
    assert config.auth.jwks_url is not None and config.auth.accepted_algorithms == ("RS256", "ES256", "EdDSA")


@pytest.mark.parametrize(
    ("var", "value", "key"),
    [
        ("SCOREBOARD_REDIS_URL", "http://127.0.0.1:6379", "storage.redis_url"),
        ("SCOREBOARD_DATABASE_URL", "mysql://127.0.0.1/x", "storage.database_url"),
    ],
)
def test_backend_urls_checked(tmp_path: Path, var: str, value: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(_write(tmp_path, GOOD), {var: value})


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "", "192.168.1.20", "10.0.0.1", "scoreboard.example", "::ffff:8.8.8.8"]
)
@pytest.mark.parametrize("env", ["development", "test"])
def test_a_reachable_server_refuses_the_development_secrets(tmp_path: Path, host: str, env: str) -> None:
    base = {"SCOREBOARD_ENV": env, "SCOREBOARD_HOST": host}
    with pytest.raises(ConfigError, match="SCOREBOARD_JWT_SECRET: the built-in development secret") as info:
        load_config(_write(tmp_path, GOOD), base)
    assert str(info.value).endswith("set SCOREBOARD_JWT_SECRET") and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"set SCOREBOARD_ACTION_SECRET$"):
        load_config(_write(tmp_path, GOOD), {**base, "SCOREBOARD_JWT_SECRET": "j" * 32})
    with pytest.raises(ConfigError, match=r"set SCOREBOARD_ACTION_PREVIOUS_SECRETS$"):
        load_config(_write(tmp_path, GOOD), {**base, **STRONG, "SCOREBOARD_ACTION_PREVIOUS_SECRETS": DEV_ACTION_SECRET})
    assert load_config(_write(tmp_path, GOOD), {**base, **STRONG}).server.host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_a_loopback_server_may_use_the_development_secrets(tmp_path: Path, host: str) -> None:
    assert load_config(_write(tmp_path, GOOD), {"SCOREBOARD_HOST": host}).secrets.jwt == DEV_JWT_SECRET.encode()


@pytest.mark.parametrize(
    "previous",
    [DEV_ACTION_SECRET, DEV_JWT_SECRET, "short", "j" * 32, f"{'p' * 32},{'q' * 8}"],
    ids=["development action key", "development user key", "short", "the user key", "second one short"],
)
def test_production_checks_previous_action_secrets_like_the_current(tmp_path: Path, previous: str) -> None:
    env = {"SCOREBOARD_ENV": "production", **STRONG, "SCOREBOARD_ACTION_PREVIOUS_SECRETS": previous}
    with pytest.raises(ConfigError, match="SCOREBOARD_ACTION_PREVIOUS_SECRETS"):
        load_config(_write(tmp_path, GOOD), env)


def test_the_image_refuses_to_start_without_real_secrets(tmp_path: Path) -> None:
    # The Dockerfile's environment, as the container starts with no secrets given.
    env: dict[str, str] = {}
    for line in (Path(__file__).parent.parent / "Dockerfile").read_text().splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                name, _, value = pair.partition("=")
                env[name] = value
    assert env["SCOREBOARD_ENV"] == "production" and env["SCOREBOARD_HOST"] == "0.0.0.0"
    with pytest.raises(ConfigError, match="SCOREBOARD_JWT_SECRET"):
        load_config(_write(tmp_path, GOOD), env)
    assert load_config(_write(tmp_path, GOOD), {**env, **STRONG}).production


def test_auth_settings(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD), {})
    assert (config.auth.issuer, config.auth.audience, config.auth.max_lifetime_seconds) == (None, None, 86_400)
    text = GOOD + "\n[auth]\nissuer = 'https://id.example'\naudience = 'scoreboard'\nmax_lifetime_seconds = 3600\n"
    auth = load_config(_write(tmp_path, text), {}).auth
    assert (auth.issuer, auth.audience, auth.max_lifetime_seconds) == ("https://id.example", "scoreboard", 3600)
    for bad in ("audience = ''", "max_lifetime_seconds = 0", "issuer = 5"):
        with pytest.raises(ConfigError, match="auth"):
            load_config(_write(tmp_path, GOOD + f"\n[auth]\n{bad}\n"), {})


JWKS = "\n[auth]\njwks_url = 'https://id.example/.well-known/jwks.json'\nissuer = 'https://id.example/'\naudience = 'scoreboard'\n"


def test_identity_provider_settings(tmp_path: Path) -> None:
    auth = load_config(_write(tmp_path, GOOD), {}).auth
    assert auth.jwks_url is None and auth.accepted_algorithms == ("HS256",)
    auth = load_config(
        _write(tmp_path, GOOD + JWKS + "jwks_refresh_seconds = 60\njwks_cooldown_seconds = 5\n"), {}
    ).auth
    assert auth.accepted_algorithms == ("RS256", "ES256", "EdDSA")  # no HS256 unless asked for
    assert (auth.jwks_refresh_seconds, auth.jwks_cooldown_seconds) == (60, 5)
    auth = load_config(_write(tmp_path, GOOD + JWKS + "algorithms = ['ES256', 'HS256']\n"), {}).auth
    assert auth.accepted_algorithms == ("ES256", "HS256")
    local = GOOD + JWKS.replace("https://id.example/.well-known", "http://127.0.0.1:9/.well-known")
    assert load_config(_write(tmp_path, local), {}).auth.jwks_url == "http://127.0.0.1:9/.well-known/jwks.json"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + JWKS.replace("https://", "http://"), "auth.jwks_url: must be an https:// URL"),
        (GOOD + JWKS.replace("https://id.example/.well-known", "ftp://id.example"), "auth.jwks_url: must be"),
        (GOOD + JWKS.replace("https://id.example/.well-known/jwks.json", "jwks.json"), "auth.jwks_url: must be"),
        (GOOD + JWKS.replace("https://id.example/.well-known/jwks.json", "http://[::1"), "auth.jwks_url: not a URL"),
        (GOOD + JWKS.replace("https://id.example/.well-known/jwks.json", ""), "auth.jwks_url"),
        (GOOD + JWKS.replace("issuer = 'https://id.example/'\n", ""), "auth.issuer: required with auth.jwks_url"),
        (GOOD + JWKS.replace("audience = 'scoreboard'\n", ""), "auth.audience: required with auth.jwks_url"),
        (GOOD + JWKS + "algorithms = ['HS256']\n", "auth.algorithms: accepts none of RS256"),
        (GOOD + JWKS + "algorithms = []\n", "auth.algorithms"),
        (GOOD + JWKS + "algorithms = ['none']\n", "auth.algorithms"),
        (GOOD + JWKS + "algorithms = ['HS512']\n", "auth.algorithms"),
        (GOOD + JWKS + "algorithms = ['RS256', 'RS256']\n", "auth.algorithms: an algorithm is named twice"),
        (GOOD + "\n[auth]\nalgorithms = ['RS256']\n", "auth.algorithms: RS256 needs auth.jwks_url"),
        (GOOD + JWKS + "jwks_refresh_seconds = 1\n", "auth.jwks_refresh_seconds"),
        (GOOD + JWKS + "jwks_cooldown_seconds = 0\n", "auth.jwks_cooldown_seconds"),
    ],
)
def test_identity_provider_settings_are_checked(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text), {})
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_hs256_needs_a_secret_of_32_bytes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^SCOREBOARD_JWT_SECRET: HS256 needs at least 32 bytes"):
        load_config(_write(tmp_path, GOOD), {"SCOREBOARD_JWT_SECRET": "j" * 31})
    assert load_config(_write(tmp_path, GOOD), {"SCOREBOARD_JWT_SECRET": "j" * 32}).secrets.jwt == b"j" * 32


def test_without_hs256_the_user_secret_is_not_needed(tmp_path: Path) -> None:
    # The provider signs users' tokens: no shared secret to set, in production or on a public address.
    env = {"SCOREBOARD_ENV": "production", "SCOREBOARD_HOST": "0.0.0.0", "SCOREBOARD_ACTION_SECRET": "a" * 32}
    assert load_config(_write(tmp_path, GOOD + JWKS), env).production
    with pytest.raises(ConfigError, match="SCOREBOARD_JWT_SECRET"):
        load_config(_write(tmp_path, GOOD + JWKS + "algorithms = ['RS256', 'HS256']\n"), env)
    with pytest.raises(ConfigError, match="SCOREBOARD_ACTION_SECRET"):
        load_config(_write(tmp_path, GOOD + JWKS), {**env, "SCOREBOARD_ACTION_SECRET": "short"})


def test_the_games_title(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, GOOD), {}).server.title == "Scoreboard"
    for title in ("Space Raiders", "Ünïcødé 🏆 ゲーム", "<script>alert(1)</script>", "x" * 100):
        text = GOOD.replace("port = 9000", f"title = {json.dumps(title, ensure_ascii=False)}")  # a TOML string too
        assert load_config(_write(tmp_path, text), {}).server.title == title


@pytest.mark.parametrize(
    ("title", "message"),
    [
        ('""', "server.title: Expected `str` of length >= 1"),
        ('"' + "x" * 101 + '"', "server.title: Expected `str` of length <= 100"),
        ("42", "server.title: Expected `str`, got `int`"),
        ('"   "', "server.title: must not be blank"),
        (r'"Space\nRaiders"', "server.title: control characters are not allowed (U+000A)"),
        (r'"Space\tRaiders"', "server.title: control characters are not allowed (U+0009)"),
        (r'"Raiders\u007f"', "server.title: control characters are not allowed (U+007F)"),
        (r'"Raiders\u0085"', "server.title: control characters are not allowed (U+0085)"),  # C1: next line
        (r'"Space\u2028Raiders"', "server.title: control characters are not allowed (U+2028)"),
    ],
)
def test_a_bad_title_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], title: str, message: str
) -> None:
    path = _write(tmp_path, GOOD.replace("port = 9000", f"title = {title}"))
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert str(info.value) == message
    # At start-up: the same line, and nothing else.
    assert run.main(["--config", str(path), "token", "someone"]) == 2
    assert capsys.readouterr().err == f"config error: {message}\n"
