"""The Grafana dashboard (deploy/grafana/scoreboard.json): importable (the dashboard model's
required fields), every panel with a data source and queries, and every query naming metrics the
server exports. tests/test_prometheus.py runs each query in a real Prometheus."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .metric_names import exported, named_in

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "scoreboard.json"
GRID_COLUMNS = 24


def load() -> dict[str, Any]:
    """The dashboard model."""
    model: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return model


def queries() -> list[str]:
    """Every panel's PromQL, as written (with Grafana's variables)."""
    return [target["expr"] for panel in load()["panels"] for target in panel["targets"]]


def test_the_model_has_what_an_import_needs() -> None:
    model = load()
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", model["uid"])
    assert model["title"] and isinstance(model["schemaVersion"], int) and isinstance(model["version"], int)
    assert {"from", "to"} <= set(model["time"]) and isinstance(model["panels"], list) and model["panels"]
    variables = {variable["name"]: variable for variable in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert "id" not in model or model["id"] is None  # an id would point at another Grafana's row


def test_every_panel_has_a_data_source_queries_and_a_place() -> None:
    panels = load()["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert panel["type"] in ("timeseries", "stat") and panel["title"], panel
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        targets = panel["targets"]
        assert targets and len({t["refId"] for t in targets}) == len(targets), panel["title"]
        assert all(t["datasource"] == panel["datasource"] and t["expr"] for t in targets), panel["title"]
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["x"] + grid["w"] <= GRID_COLUMNS


def test_every_query_names_metrics_the_server_exports() -> None:
    names = exported()
    for query in queries():
        used = named_in(query)
        assert used, f"names no metric: {query}"
        assert used <= names, f"not exported: {used - names} in {query}"


def test_the_dashboard_shows_what_the_alerts_watch() -> None:
    shown = set().union(*(named_in(query) for query in queries()))
    for name in (
        "scoreboard_http_requests_total",
        "scoreboard_http_request_duration_seconds_bucket",
        "scoreboard_awards_total",
        "scoreboard_backend_up",
        "scoreboard_pool_connections_in_use",
        "scoreboard_board_rebuilds_total",
        "scoreboard_websocket_slow_clients_closed_total",
    ):
        assert name in shown
