"""The settings of `config.toml`: a typed section per table, each key with its bounds and default."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

# Python's `$` also matches before a final newline: the lookahead makes the whole string match,
# and keeps the pattern valid ECMA-262 for the OpenAPI document (`\Z` is not).
ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,100}(?!\n)$"

Algorithm = Literal["HS256", "RS256", "ES256", "EdDSA"]
HS256: Algorithm = "HS256"
PROVIDER_ALGORITHMS: tuple[Algorithm, ...] = ("RS256", "ES256", "EdDSA")  # with the identity provider's keys

MAX_TITLE_CHARS = 100

NonNegInt = Annotated[int, Meta(ge=0)]
PosInt = Annotated[int, Meta(ge=1)]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class ServerSettings(_Section, frozen=True):
    """Where to listen and what to accept from the network."""

    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8080
    trusted_proxies: tuple[str, ...] = ()
    max_body_bytes: Annotated[int, Meta(ge=256, le=1_048_576)] = 8192
    # On SIGTERM or SIGINT: the process exits at most this long after the signal (see app/drain.py).
    drain_seconds: Annotated[float, Meta(ge=2, le=3600)] = 10.0
    # How long browsers and shared caches (a CDN) may reuse GET /top without asking: `Cache-Control:
    # public, max-age=N`; 0 sends `no-cache` (reuse only after a revalidation, 304 by its ETag).
    read_cache_seconds: Annotated[int, Meta(ge=0, le=86_400)] = 1
    # The board the routes and messages without a board mean (GET /scoreboard/top, the award's
    # top-level fields, a subscribe without `board`).
    default_board: str = "global"
    # The game's name: the live page's heading and browser tab. Always shown as text; config's
    # `_check_title` refuses what a title bar cannot show.
    title: Annotated[str, Meta(min_length=1, max_length=MAX_TITLE_CHARS)] = "Scoreboard"


class StorageSettings(_Section, frozen=True):
    """Which store holds the truth and how hard it is flushed to disk."""

    sqlite_path: str = "./data/scoreboard.db"
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    redis_url: str = ""
    redis_prefix: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:\-]{1,64}(?!\n)$")] = "scoreboard"
    redis_pool_size: Annotated[int, Meta(ge=2, le=10_000)] = 64
    database_url: str = ""
    database_pool_size: Annotated[int, Meta(ge=1, le=1000)] = 10
    # Award history older than this many days is deleted (app/retention.py); 0: kept for ever.
    history_retention_days: Annotated[int, Meta(ge=0, le=36_500)] = 0


Claim = Annotated[str, Meta(min_length=1, max_length=256)]


class AuthSettings(_Section, frozen=True):
    """How users' bearer JWTs are checked."""

    leeway_seconds: Annotated[int, Meta(ge=0, le=300)] = 10
    max_token_bytes: Annotated[int, Meta(ge=256, le=16384)] = 4096
    issuer: Claim | None = None
    audience: Claim | None = None
    max_lifetime_seconds: Annotated[int, Meta(ge=60, le=31_536_000)] = 86_400
    admin_role: Claim = "admin"  # a value of the `roles` claim that makes its bearer an operator
    # The identity provider's JWKS (its public signing keys); None: HS256 with the shared secret only.
    jwks_url: Annotated[str, Meta(min_length=1, max_length=2048)] | None = None
    # None: HS256 without jwks_url, RS256, ES256 and EdDSA with it (no HS256: no shared secret to leak).
    algorithms: Annotated[tuple[Algorithm, ...], Meta(min_length=1)] | None = None
    jwks_refresh_seconds: Annotated[int, Meta(ge=10, le=86_400)] = 300
    # After a fetch starts, a token naming an unknown `kid` waits this long before it may start another.
    jwks_cooldown_seconds: Annotated[int, Meta(ge=1, le=3600)] = 30

    @property
    def accepted_algorithms(self) -> tuple[Algorithm, ...]:
        """The algorithms a bearer JWT may use, the defaults resolved."""
        if self.algorithms is not None:
            return self.algorithms
        return PROVIDER_ALGORITHMS if self.jwks_url is not None else (HS256,)


class TokenSettings(_Section, frozen=True):
    """Action tokens: lifetime of a token issued by /actions/initialize."""

    ttl_seconds: Annotated[int, Meta(ge=1, le=86_400)] = 300


class LimitSettings(_Section, frozen=True):
    """Rate and connection limits."""

    updates_per_minute: PosInt = 10
    initializes_per_minute: PosInt = 30
    tokens_per_user: PosInt = 20
    ip_requests_per_minute: PosInt = 100
    ws_connections_per_user: PosInt = 5
    ws_connections_per_ip: PosInt = 100
    ws_handshakes_per_ip_per_minute: PosInt = 60
    ws_connections_per_process: PosInt = 10_000
    idempotency_hours: Annotated[int, Meta(ge=1, le=720)] = 24  # a trusted write's key answers retries this long
    # Repeat offenders: from a user's 2nd held award in 24 hours, their updates within
    # held_backoff_seconds * 2^(k-2) (capped) of the last hold answer 429 RATE_LIMITED; 0: off.
    held_backoff_seconds: Annotated[int, Meta(ge=0, le=86_400)] = 0
    held_backoff_max_seconds: Annotated[int, Meta(ge=1, le=604_800)] = 3600


class WebSocketSettings(_Section, frozen=True):
    """Live updates over /ws/scoreboard."""

    allow_anonymous: bool = True
    allowed_origins: tuple[str, ...] = ()
    heartbeat_seconds: Annotated[float, Meta(gt=0, le=3600)] = 30.0
    send_buffer_bytes: Annotated[int, Meta(ge=1024, le=16_777_216)] = 262_144


class LogSettings(_Section, frozen=True):
    """Logging verbosity."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class MetricsSettings(_Section, frozen=True):
    """Prometheus metrics: off unless enabled; on an admin listener of their own unless asked for
    on the main port."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535)] = 9464
    on_main_port: bool = False


BOARD_ID_PATTERN = r"^[a-z0-9_\-]{1,64}(?!\n)$"
BoardId = Annotated[str, Meta(pattern=BOARD_ID_PATTERN)]
DEFAULT_BOARD = "global"


class CountWindow(_Section, frozen=True):
    """At most `count` in any rolling `window_s` seconds."""

    count: Annotated[int, Meta(ge=0, le=1_000_000)]
    window_s: Annotated[int, Meta(ge=1, le=86_400)]


class PositiveCountWindow(CountWindow, frozen=True):
    """A rate limit: at least one in its window (none would refuse every update)."""

    count: Annotated[int, Meta(ge=1, le=1_000_000)]


class VelocitySettings(_Section, frozen=True):
    """The velocity rule: the user's score of the action in the last `window_s` against the
    `windows` windows before it (formula in docs/operators.md), once `min_samples` of those had any."""

    window_s: Annotated[int, Meta(ge=1, le=86_400)] = 300
    windows: Annotated[int, Meta(ge=2, le=1000)] = 12
    min_samples: Annotated[int, Meta(ge=1, le=1000)] = 4
    z: Annotated[float, Meta(gt=0, le=1000)] = 3.0


class ActionSettings(_Section, frozen=True):
    """One entry of the action catalog: what it is worth, how fast it can be done, where it counts,
    whether a trusted server must vouch for it first, which cheat rules hold its awards for an
    operator, and how often a user may complete it."""

    score: Annotated[int, Meta(ge=0, le=1_000_000_000)]
    min_seconds: Annotated[float, Meta(ge=0, le=86_400)] = 0.0
    boards: Annotated[tuple[BoardId, ...], Meta(min_length=1, max_length=20)] | None = None  # None: the default
    # Awarded only once a trusted server attested it (POST /api/v1/actions/{actionId}/attest).
    attest: bool = False
    # Cheat quarantine: this user's awards of the action beyond N in any rolling hour are held for an
    # operator (held ones count); None: never held.
    hold_over_per_hour: Annotated[int, Meta(ge=0, le=1_000_000)] | None = None
    # The same over any window: beyond `count` in `window_s` seconds (held ones count); None: never held.
    hold_over: CountWindow | None = None
    # Held when the user completed the action (held or not) less than this many seconds before.
    hold_within_s: Annotated[float, Meta(gt=0, le=86_400)] | None = None
    # Held when it would take the user's awards on one of its boards in the rolling hour past this.
    max_score_per_hour: Annotated[int, Meta(ge=0, le=2**53)] | None = None
    # Held when the user's score rate of the action jumps against their own history (a z-score).
    velocity: VelocitySettings | None = None
    # Updates of the action per user beyond this answer 429 RATE_LIMITED (the token stays usable).
    rate_limit: PositiveCountWindow | None = None


class BoardSettings(_Section, frozen=True):
    """One board: its order, how a write changes an entry, when it resets (in which zone), and how
    many finished periods stay readable."""

    title: Annotated[str, Meta(min_length=1, max_length=100)] | None = None  # None: the board's id
    order: Literal["desc", "asc"] = "desc"
    operator: Literal["incr", "best", "set"] = "incr"
    reset: Annotated[str, Meta(min_length=1, max_length=100)] = "never"
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] = "UTC"
    keep_periods: Annotated[int, Meta(ge=0, le=1000)] = 12
    format: Literal["number", "duration_ms"] = "number"  # how pages show a score


Scope = Literal["scores:write", "actions:attest"]
SCORES_WRITE: Scope = "scores:write"  # what POST /api/v1/boards/{board}/scores needs
ACTIONS_ATTEST: Scope = "actions:attest"  # what POST /api/v1/actions/{actionId}/attest needs


class ServiceSettings(_Section, frozen=True):
    """A trusted game server: the SHA-256 (hex) of its key, what it may do, on which boards."""

    key_sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}(?!\n)$")]
    scopes: tuple[Scope, ...] = (SCORES_WRITE,)
    boards: tuple[BoardId, ...] | None = None  # None: every board


ActionName = Annotated[str, Meta(pattern=ID_PATTERN)]


class FileSettings(_Section, frozen=True):
    """The TOML file as written; every table optional except the action catalog."""

    actions: dict[ActionName, ActionSettings]
    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()
    auth: AuthSettings = AuthSettings()
    tokens: TokenSettings = TokenSettings()
    limits: LimitSettings = LimitSettings()
    websocket: WebSocketSettings = WebSocketSettings()
    log: LogSettings = LogSettings()
    metrics: MetricsSettings = MetricsSettings()
    boards: dict[BoardId, BoardSettings] = msgspec.field(default_factory=lambda: {DEFAULT_BOARD: BoardSettings()})
    services: dict[ActionName, ServiceSettings] = {}
