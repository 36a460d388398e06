"""Every metric the service exports: its name, help, labels, buckets and how `--workers N` adds up
the processes' values (a gauge's multiprocess mode). Labels are bounded: route templates, status
codes, error codes, action types from the catalog, the board, never a user id or a raw path."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .tally import LATENCY_BOUNDS, REBUILD_BOUNDS, WAVE_BOUNDS

BOARD = "global"  # the only board today
LEADERBOARD_CHANNEL = "leaderboard"  # the only WebSocket channel today
# Users on the board with a score at most each bound: `le` as in a histogram, for histogram_quantile().
SCORE_BOUNDS = (100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000)


class Families:
    """The prometheus-client metrics of one app, registered in `registry` (one process) or in none
    (`--workers N`: each process writes its values to files that every process reads at a scrape)."""

    def __init__(self, registry: CollectorRegistry | None, *, multiprocess: bool) -> None:
        r = registry
        # HTTP
        self.requests = Counter(
            "scoreboard_http_requests",
            "HTTP requests answered, by route template and status.",
            ["route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "scoreboard_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template (WebSocket upgrades not included).",
            ["route"],
            buckets=LATENCY_BOUNDS,
            registry=r,
        )
        self.errors = Counter(
            "scoreboard_http_errors", "Error envelopes answered, by error code.", ["code"], registry=r
        )
        self.rate_limited = Counter(
            "scoreboard_rate_limited",
            "Requests and WebSocket connections refused by a limit, by limit.",
            ["limit"],
            registry=r,
        )
        # Awards
        self.awards = Counter(
            "scoreboard_awards", "Awards committed, by action type and board.", ["action", "board"], registry=r
        )
        self.refusals = Counter(
            "scoreboard_award_refusals", "Score updates refused, by error code.", ["code"], registry=r
        )
        self.held = Counter(
            "scoreboard_awards_held",
            "Awards committed but held off the board, by action type, board and reason "
            "(board_unavailable: the ranking was down; the board catches up from the database; "
            "or a cheat rule, held for an operator: hold_over_per_hour, hold_over, hold_within_s, "
            "max_score_per_hour, velocity; an award two rules held counts under each).",
            ["action", "board", "reason"],
            registry=r,
        )
        self.tokens_issued = Counter(
            "scoreboard_action_tokens_issued", "Action tokens issued, by action type.", ["action"], registry=r
        )
        self.tokens_spent = Counter(
            "scoreboard_action_tokens_spent",
            "Action tokens spent by a committed award, by action type.",
            ["action"],
            registry=r,
        )
        self.top_entries = Counter(
            "scoreboard_top10_entries",
            "Awards that brought their user into the top 10 (the top's turnover), by board.",
            ["board"],
            registry=r,
        )
        self.overtake_notices = Counter(
            "scoreboard_overtake_notices",
            "Overtake notices kept: users told that a write passed them (at most 100 a write).",
            registry=r,
        )
        self.overtakes_skipped = Counter(
            "scoreboard_overtakes_skipped",
            "Writes whose overtake notices were skipped: too many writes' notices were being worked on.",
            registry=r,
        )
        self.active_users = Gauge(
            "scoreboard_active_users",
            "Distinct users who started or completed an action in the current minute and the four before it.",
            registry=r,
            multiprocess_mode="livemax",  # every process reports the shared count
        )
        # The board
        self.board_users = Gauge(
            "scoreboard_board_users", "Users on the board.", ["board"], registry=r, multiprocess_mode="livemax"
        )
        self.score_distribution = Gauge(
            "scoreboard_score_distribution",
            "Users on the board with a score at most `le` (cumulative, like histogram buckets).",
            ["board", "le"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.rebuilds = Counter(
            "scoreboard_board_rebuilds",
            "Fills of the ranking from the database, by outcome (succeeded, failed).",
            ["outcome"],
            registry=r,
        )
        self.rebuild_seconds = Histogram(
            "scoreboard_board_rebuild_seconds",
            "Time of a successful fill of the ranking.",
            buckets=REBUILD_BOUNDS,
            registry=r,
        )
        # Live
        self.connections = Gauge(
            "scoreboard_websocket_connections", "Open WebSocket connections.", registry=r, multiprocess_mode="livesum"
        )
        self.subscriptions = Gauge(
            "scoreboard_websocket_subscriptions",
            "WebSocket subscriptions, by channel.",
            ["channel"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.messages_sent = Counter(
            "scoreboard_websocket_messages_sent", "WebSocket frames written to clients.", registry=r
        )
        self.messages_dropped = Counter(
            "scoreboard_websocket_messages_dropped",
            "WebSocket frames not written, by reason (closing: the connection was going away; "
            "slow_client: it was too far behind and is closed).",
            ["reason"],
            registry=r,
        )
        self.slow_closed = Counter(
            "scoreboard_websocket_slow_clients_closed",
            "WebSocket clients closed (1013) for falling too far behind.",
            registry=r,
        )
        self.waves = Counter("scoreboard_waves", "Versions of the top 10 broadcast to the subscribers.", registry=r)
        self.wave_seconds = Histogram(
            "scoreboard_wave_latency_seconds",
            "Time from the award that changed the top 10 (its transaction's start) to its wave written to every subscriber.",
            buckets=WAVE_BOUNDS,
            registry=r,
        )
        # Backing services
        self.redis_seconds = Histogram(
            "scoreboard_redis_round_trip_seconds",
            "Time of a Redis round trip of the award path (one pipeline shared by the requests of a loop turn).",
            buckets=LATENCY_BOUNDS,
            registry=r,
        )
        self.database_seconds = Histogram(
            "scoreboard_database_round_trip_seconds",
            "Time of a database transaction (PostgreSQL: from the connection's acquisition to COMMIT; "
            "SQLite: a group commit from BEGIN to COMMIT).",
            buckets=LATENCY_BOUNDS,
            registry=r,
        )
        self.pool_in_use = Gauge(
            "scoreboard_pool_connections_in_use",
            "Connections of a pool in use, by pool (database, redis).",
            ["pool"],
            registry=r,
            multiprocess_mode="liveall",  # per process: one full pool is what hurts
        )
        self.pool_max = Gauge(
            "scoreboard_pool_connections_max",
            "Size of a pool, by pool (database, redis).",
            ["pool"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.backend_up = Gauge(
            "scoreboard_backend_up",
            "1 if a backing service answered its last ping, by backend (redis, database).",
            ["backend"],
            registry=r,
            multiprocess_mode="livemin",  # down for one process is down
        )
        self.process = ProcessFamilies() if multiprocess else None


class ProcessFamilies:
    """The standard process metrics, written by each process for `--workers N`, where
    prometheus-client's own process collector would report only the process that answers the
    scrape: memory and descriptors summed over the live processes, CPU over all that ran."""

    def __init__(self) -> None:
        self.cpu = Counter("process_cpu_seconds", "Total user and system CPU time spent in seconds.", registry=None)
        self.rss = Gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            registry=None,
            multiprocess_mode="livesum",
        )
        self.vms = Gauge(
            "process_virtual_memory_bytes", "Virtual memory size in bytes.", registry=None, multiprocess_mode="livesum"
        )
        self.fds = Gauge(
            "process_open_fds", "Number of open file descriptors.", registry=None, multiprocess_mode="livesum"
        )
        self.max_fds = Gauge(
            "process_max_fds", "Maximum number of open file descriptors.", registry=None, multiprocess_mode="livemin"
        )
        self.start_time = Gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            registry=None,
            multiprocess_mode="livemin",
        )
