"""The benchmark's server configuration lifts every per-IP and per-process limit it would hit."""

from __future__ import annotations

import tomllib

from app.config import parse_settings
from bench.server import bench_config

CLIENTS = 10_000  # `python -m bench run --clients 10000`, all from loopback addresses


def test_bench_config_lets_ten_thousand_websockets_through() -> None:
    limits = parse_settings(tomllib.loads(bench_config(redis_prefix="bench", token_ttl=60))).limits
    assert limits.ws_connections_per_ip >= CLIENTS
    assert limits.ws_handshakes_per_ip_per_minute >= CLIENTS
    assert limits.ws_connections_per_process >= CLIENTS
    assert limits.initializes_per_minute >= limits.updates_per_minute >= 1_000_000  # every bench award
    assert limits.tokens_per_user >= 1_000_000  # tokens issued ahead of the load
