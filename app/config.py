"""Configuration: `config.toml` validated into typed settings, then `SCOREBOARD_*` overrides and the secrets."""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from pathlib import Path

import msgspec
import yarl

from .boards.periods import check_reset, check_timezone
from .settings import (
    ACTIONS_ATTEST,
    HS256,
    ID_PATTERN,
    PROVIDER_ALGORITHMS,
    ActionSettings,
    AuthSettings,
    BoardSettings,
    FileSettings,
    LimitSettings,
    MetricsSettings,
    ServerSettings,
    ServiceSettings,
    StorageSettings,
    TokenSettings,
    WebSocketSettings,
)

DEV_JWT_SECRET = "dev-only-user-jwt-secret-change-me-0001"  # noqa: S105 - refused in production
DEV_ACTION_SECRET = "dev-only-action-token-secret-change-me-02"  # noqa: S105 - refused in production
MIN_SECRET_BYTES = 32
MIN_HS256_SECRET_BYTES = 32  # RFC 7518, 3.2: at least the hash's size

# Controls (C0, DEL, C1) and line or paragraph separators: a tab title shows them as boxes or drops
# them, and a heading breaks on them.
_UNSHOWN_IN_TITLE = frozenset({"Cc", "Zl", "Zp"})


class ConfigError(Exception):
    """A configuration problem, phrased as one line that names the offending key."""


class Secrets(msgspec.Struct, frozen=True, kw_only=True):
    """Signing keys, read from the environment only; `repr` never shows them."""

    jwt: bytes
    action: bytes
    action_previous: tuple[bytes, ...] = ()

    def __repr__(self) -> str:
        return "Secrets(<hidden>)"


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the app factory needs, validated."""

    settings: FileSettings
    secrets: Secrets
    env: str = "development"

    @property
    def server(self) -> ServerSettings:
        return self.settings.server

    @property
    def storage(self) -> StorageSettings:
        return self.settings.storage

    @property
    def auth(self) -> AuthSettings:
        return self.settings.auth

    @property
    def tokens(self) -> TokenSettings:
        return self.settings.tokens

    @property
    def limits(self) -> LimitSettings:
        return self.settings.limits

    @property
    def websocket(self) -> WebSocketSettings:
        return self.settings.websocket

    @property
    def metrics(self) -> MetricsSettings:
        return self.settings.metrics

    @property
    def actions(self) -> dict[str, ActionSettings]:
        return self.settings.actions

    @property
    def boards(self) -> dict[str, BoardSettings]:
        return self.settings.boards

    @property
    def services(self) -> dict[str, ServiceSettings]:
        return self.settings.services

    @property
    def production(self) -> bool:
        return self.env == "production"


# Environment variable -> (table, key) of the file settings it overrides.
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "SCOREBOARD_HOST": ("server", "host"),
    "SCOREBOARD_PORT": ("server", "port"),
    "SCOREBOARD_SQLITE_PATH": ("storage", "sqlite_path"),
    "SCOREBOARD_REDIS_URL": ("storage", "redis_url"),
    "SCOREBOARD_DATABASE_URL": ("storage", "database_url"),
}


def _path_of(message: str) -> str:
    """Turn msgspec's `... - at `$.a.b`` into `a.b: ...` so the key comes first."""
    head, sep, where = message.rpartition(" - at `$.")
    if not sep:
        return message
    return f"{where.rstrip('`')}: {head}"


def _check_actions(raw: object) -> None:
    # Validated entry by entry so that an error names the action, which msgspec's path would not.
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("actions: the action catalog is missing or empty (add an [actions.NAME] table)")
    for name, entry in raw.items():
        if not re.fullmatch(ID_PATTERN, str(name)):
            raise ConfigError(f"actions.{name}: an action name is 1-100 characters of A-Z a-z 0-9 _ . : -")
        try:
            msgspec.convert(entry, ActionSettings)
        except msgspec.ValidationError as exc:
            where = _path_of(str(exc))
            raise ConfigError(f"actions.{name}.{where}" if where != str(exc) else f"actions.{name}: {exc}") from None


def check_board(name: str, board: BoardSettings) -> None:
    """Raise ConfigError (naming `boards.NAME`) for a reset or timezone the schedules cannot use."""
    try:
        check_timezone(board.timezone)
    except ValueError as exc:
        raise ConfigError(f"boards.{name}.timezone: {exc}") from None
    try:
        check_reset(board.reset)
    except ValueError as exc:
        raise ConfigError(f"boards.{name}.reset: {exc}") from None


def _check_boards(settings: FileSettings) -> None:
    boards = settings.boards
    if not boards:
        raise ConfigError("boards: declare at least one board, or leave [boards] out for the one board `global`")
    for name, board in boards.items():
        check_board(name, board)
    default = settings.server.default_board
    if default not in boards:
        raise ConfigError(f"server.default_board: {default!r} is not a declared board")
    for action, entry in settings.actions.items():
        if entry.boards is not None and len(set(entry.boards)) != len(entry.boards):
            raise ConfigError(f"actions.{action}.boards: a board is named twice")
        for board_id in entry.boards or (default,):
            if board_id not in boards:
                raise ConfigError(f"actions.{action}.boards: {board_id!r} is not a declared board")
            if boards[board_id].operator != "incr":
                raise ConfigError(
                    f"actions.{action}.boards: {board_id!r} is a {boards[board_id].operator!r} board; "
                    "actions award only on incr boards (best and set boards take trusted writes)"
                )
    for name, service in settings.services.items():
        for board_id in service.boards or ():
            if board_id not in boards:
                raise ConfigError(f"services.{name}.boards: {board_id!r} is not a declared board")


def _check_attestations(settings: FileSettings) -> None:
    # An action nobody may attest could never be awarded: say so at start, not at the first update.
    if any(ACTIONS_ATTEST in s.scopes for s in settings.services.values()):
        return
    for action, entry in settings.actions.items():
        if entry.attest:
            raise ConfigError(
                f"actions.{action}.attest: no [services.NAME] has the scope {ACTIONS_ATTEST!r}, "
                "so this action could never be awarded"
            )


def _check_rules(settings: FileSettings) -> None:
    # Settings each valid alone but that could never work together: said at start.
    for action, entry in settings.actions.items():
        velocity = entry.velocity
        if velocity is not None and velocity.min_samples > velocity.windows:
            raise ConfigError(
                f"actions.{action}.velocity.min_samples: {velocity.min_samples} is more than its "
                f"{velocity.windows} windows, so the rule could never apply"
            )
    limits = settings.limits
    if limits.held_backoff_seconds > limits.held_backoff_max_seconds:
        raise ConfigError("limits.held_backoff_max_seconds: must be at least limits.held_backoff_seconds")


def _check_auth(auth: AuthSettings) -> None:
    algorithms = auth.accepted_algorithms
    if len(set(algorithms)) != len(algorithms):
        raise ConfigError("auth.algorithms: an algorithm is named twice")
    provided = [name for name in algorithms if name in PROVIDER_ALGORITHMS]
    if auth.jwks_url is None:
        if provided:
            raise ConfigError(f"auth.algorithms: {provided[0]} needs auth.jwks_url (the identity provider's keys)")
        return
    try:
        url = yarl.URL(auth.jwks_url)
    except ValueError:
        raise ConfigError("auth.jwks_url: not a URL") from None
    # Whoever can change the keys in transit can sign any user's token: plain HTTP stays on this machine.
    if not url.host or not (url.scheme == "https" or (url.scheme == "http" and is_loopback(url.host))):
        raise ConfigError("auth.jwks_url: must be an https:// URL (http:// only on a loopback address)")
    if not provided:
        raise ConfigError("auth.algorithms: accepts none of RS256, ES256, EdDSA, which auth.jwks_url is for")
    if auth.issuer is None:
        raise ConfigError("auth.issuer: required with auth.jwks_url (the `iss` of the provider's tokens)")
    if auth.audience is None:
        raise ConfigError(
            "auth.audience: required with auth.jwks_url (the provider signs tokens for other services too)"
        )


def _check_title(title: str) -> None:
    if not title.strip():
        raise ConfigError("server.title: must not be blank")
    for ch in title:
        if unicodedata.category(ch) in _UNSHOWN_IN_TITLE:
            raise ConfigError(f"server.title: control characters are not allowed (U+{ord(ch):04X})")


def parse_settings(raw: Mapping[str, object]) -> FileSettings:
    """Validate a decoded TOML document; raise ConfigError naming the bad key."""
    _check_actions(raw.get("actions"))
    try:
        settings = msgspec.convert(raw, FileSettings)
    except msgspec.ValidationError as exc:
        raise ConfigError(_path_of(str(exc))) from None
    storage = settings.storage
    if storage.redis_url and not storage.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("storage.redis_url: must start with redis://, rediss:// or unix://")
    if storage.database_url and not storage.database_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("storage.database_url: must start with postgresql://")
    metrics = settings.metrics
    if metrics.enabled and not metrics.on_main_port and metrics.port == settings.server.port:
        raise ConfigError("metrics.port: equals server.port; set metrics.on_main_port = true to serve /metrics there")
    _check_title(settings.server.title)
    _check_boards(settings)
    _check_attestations(settings)
    _check_rules(settings)
    _check_auth(settings.auth)
    for proxy in settings.server.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(f"server.trusted_proxies: {proxy!r} is not an IP address or network") from None
    return settings


def _apply_env(raw: dict[str, object], environ: Mapping[str, str]) -> None:
    for var, (table, key) in ENV_OVERRIDES.items():
        value = environ.get(var)
        if value is None:
            continue
        section = raw.setdefault(table, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{table}: must be a table")
        if key == "port":
            try:
                section[key] = int(value)
            except ValueError:
                raise ConfigError(f"{var}: {value!r} is not a port number") from None
        else:
            section[key] = value


_DEV_SECRETS = (DEV_JWT_SECRET.encode(), DEV_ACTION_SECRET.encode())


def _named(secrets: Secrets, *, hs256: bool) -> list[tuple[str, bytes]]:
    """Every key in use with the variable it comes from (the user key only while HS256 is accepted)."""
    return [
        *((("SCOREBOARD_JWT_SECRET", secrets.jwt),) if hs256 else ()),
        ("SCOREBOARD_ACTION_SECRET", secrets.action),
        *(("SCOREBOARD_ACTION_PREVIOUS_SECRETS", previous) for previous in secrets.action_previous),
    ]


def is_loopback(host: str) -> bool:
    """Whether a listen address is reachable from this machine only (`localhost` or a loopback IP)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # all interfaces (""), or a name that may resolve to any of them


def _check_secrets(secrets: Secrets, *, production: bool, host: str, hs256: bool) -> None:
    if hs256 and len(secrets.jwt) < MIN_HS256_SECRET_BYTES:
        raise ConfigError(f"SCOREBOARD_JWT_SECRET: HS256 needs at least {MIN_HS256_SECRET_BYTES} bytes (RFC 7518)")
    named = _named(secrets, hs256=hs256)
    if not is_loopback(host):
        # Anyone who can reach the server could sign tokens with the published development keys.
        for name, value in named:
            if value in _DEV_SECRETS:
                raise ConfigError(
                    f"{name}: the built-in development secret is refused on a non-loopback address "
                    f"(server.host = {host!r}); set {name}"
                )
    if not production:
        return
    for name, value in named:
        if value in _DEV_SECRETS:
            raise ConfigError(f"{name}: production refuses the development default; set a secret")
        if len(value) < MIN_SECRET_BYTES:
            raise ConfigError(f"{name}: production needs at least {MIN_SECRET_BYTES} bytes")
    for name, value in named:
        if name != "SCOREBOARD_JWT_SECRET" and hs256 and value == secrets.jwt:
            raise ConfigError(f"{name}: must differ from SCOREBOARD_JWT_SECRET")


def _raw(value: str) -> bytes:
    """A secret's bytes as the environment holds them: Python decodes what is not UTF-8 there to
    lone surrogates (surrogateescape), which this turns back, so any bytes make a key."""
    return value.encode("utf-8", "surrogateescape")


def read_secrets(environ: Mapping[str, str], *, production: bool, host: str, hs256: bool = True) -> Secrets:
    """Read the signing keys from the environment, with development defaults outside production;
    the defaults are refused in production and on any address other machines can reach. Without
    HS256 (`hs256` false) the user key is not used, so not checked."""
    previous = environ.get("SCOREBOARD_ACTION_PREVIOUS_SECRETS", "")
    secrets = Secrets(
        jwt=_raw(environ.get("SCOREBOARD_JWT_SECRET", DEV_JWT_SECRET)),
        action=_raw(environ.get("SCOREBOARD_ACTION_SECRET", DEV_ACTION_SECRET)),
        action_previous=tuple(_raw(p) for p in previous.split(",") if p),
    )
    _check_secrets(secrets, production=production, host=host, hs256=hs256)
    return secrets


def read_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> FileSettings:
    """The TOML file (``SCOREBOARD_CONFIG`` or ``./config.toml``) with the environment's overrides,
    validated; no secrets (what `run.py backup` and `restore` need)."""
    env = os.environ if environ is None else environ
    file = Path(path or env.get("SCOREBOARD_CONFIG") or "config.toml")
    try:
        raw: dict[str, object] = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found") from None
    except OSError as exc:  # a folder, a name too long, no permission
        raise ConfigError(f"{file}: cannot be read ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not valid TOML ({exc})") from None
    _apply_env(raw, env)
    return parse_settings(raw)


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (``SCOREBOARD_CONFIG`` or ``./config.toml``) and apply the environment."""
    env = os.environ if environ is None else environ
    settings = read_settings(path, env)
    mode = env.get("SCOREBOARD_ENV", "development")
    if mode not in ("development", "production", "test"):
        raise ConfigError(f"SCOREBOARD_ENV: {mode!r} is not one of development, production, test")
    return Config(
        settings=settings,
        secrets=read_secrets(
            env,
            production=mode == "production",
            host=settings.server.host,
            hs256=HS256 in settings.auth.accepted_algorithms,
        ),
        env=mode,
    )
