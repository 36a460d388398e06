"""A real Prometheus (Debian's package) scrapes a running server: after an award, a PromQL query
over its HTTP API returns the award counter, and it loads the alert rules."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import aiohttp

from app.auth import UserAuth

from .conftest import ACTION_SECRET, JWT_SECRET
from .real_servers import ServerProcess, free_port, run_py
from .test_alerts import RULES, promtool
from .test_dashboard import queries

# Grafana's variables in the dashboard's queries, as Grafana would fill them in.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$job": ".*"}

CONFIG = """
[metrics]
enabled = true
port = {metrics_port}
[actions.COMPLETE_QUEST]
score = 100
"""

PROMETHEUS = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}
scrape_configs:
  - job_name: scoreboard
    static_configs:
      - targets: ["127.0.0.1:{metrics_port}"]
"""


def prometheus(tmp_path: Path, metrics_port: int) -> ServerProcess:
    """Prometheus on a free loopback port, scraping the metrics port every second, its data in tmp_path."""
    promtool()  # skips (fails under CI=true) when the package is missing, as for the rules' tests
    binary = shutil.which("prometheus")
    assert binary is not None, "promtool without prometheus: apt-get install prometheus"
    config = tmp_path / "prometheus.yml"
    config.write_text(PROMETHEUS.format(rules=RULES, metrics_port=metrics_port))
    port = free_port()
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    return ServerProcess("prometheus", command, {}, port=port, ready_path="/-/ready", log_path=tmp_path / "prom.log")


async def _query(http: aiohttp.ClientSession, url: str, promql: str) -> list[dict[str, Any]]:
    async with http.get(f"{url}/api/v1/query", params={"query": promql}) as resp:
        body = await resp.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def test_prometheus_queries_the_award_counter(tmp_path: Path) -> None:
    metrics_port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(metrics_port=metrics_port))
    env = {
        "SCOREBOARD_CONFIG": str(config),
        "SCOREBOARD_SQLITE_PATH": str(tmp_path / "board.db"),
        "SCOREBOARD_JWT_SECRET": JWT_SECRET.decode(),
        "SCOREBOARD_ACTION_SECRET": ACTION_SECRET.decode(),
    }
    with run_py(env) as server, prometheus(tmp_path, metrics_port) as prom:
        auth = {"Authorization": f"Bearer {UserAuth(JWT_SECRET).issue('alice', name='Alice')}"}
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{server.url}/api/v1/actions/initialize",
                json={"actionType": "COMPLETE_QUEST", "actionId": "q1"},
                headers=auth,
            ) as resp:
                token = (await resp.json())["data"]["actionToken"]
            async with http.post(
                f"{server.url}/api/v1/scoreboard/update", json={"actionToken": token, "actionId": "q1"}, headers=auth
            ) as resp:
                assert resp.status == 200

            deadline = time.monotonic() + 30
            while True:
                result = await _query(http, prom.url, 'scoreboard_awards_total{action="COMPLETE_QUEST"}')
                if result and float(result[0]["value"][1]) == 1:
                    break
                assert time.monotonic() < deadline, f"Prometheus never saw the award: {result}"
                await asyncio.sleep(0.5)
            assert result[0]["metric"] == {
                "__name__": "scoreboard_awards_total",
                "action": "COMPLETE_QUEST",
                "board": "global",
                "instance": f"127.0.0.1:{metrics_port}",
                "job": "scoreboard",
            }
            up = await _query(http, prom.url, 'up{job="scoreboard"}')
            assert [float(sample["value"][1]) for sample in up] == [1]
            async with http.get(f"{prom.url}/api/v1/rules") as resp:
                groups = (await resp.json())["data"]["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            assert len(rules) == 9 and all(rule["health"] in ("ok", "unknown") for rule in rules), rules

            # Every query of the dashboard runs (a syntax error answers 400); the awards panel has data.
            deadline = time.monotonic() + 30
            for written in queries():
                query = written
                for variable, filled in GRAFANA_VARIABLES.items():
                    query = query.replace(variable, filled)
                result = await _query(http, prom.url, query)
                # A rate needs two scrapes of the counter: the awards panel shows it within seconds.
                while "scoreboard_awards_total" in query and not result:
                    assert time.monotonic() < deadline, f"no data for {query}"
                    await asyncio.sleep(0.5)
                    result = await _query(http, prom.url, query)
