"""`python -m bench windows` at tiny size, end to end: every client got its snapshot first and, having
applied every message in order, shows what GET /around (or GET /top) answers at the end; never speed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .bench_cli import run_bench

USERS, CLIENTS = 200, 20


def _windows(out: Path, *options: str) -> dict[str, Any]:
    """Run `python -m bench windows` tiny; its result.json."""
    size = ("--users", str(USERS), "--clients", str(CLIENTS), "--rate", "50", "--duration", "2")
    return run_bench(out, "windows", "--mode", "embedded", *size, "--timeout", "100", *options, within=130)


@pytest.mark.parametrize("channel", ["around", "leaderboard"])
def test_tiny_windows_run_ends_with_every_client_showing_the_rest_answer(tmp_path: Path, channel: str) -> None:
    out = tmp_path / "out"
    # A third of the awards to the leaders: the top 10 moves too, so both channels carry updates.
    result = _windows(out, "--channel", channel, "--radius", "3", "--hot-share", "0.3")
    assert result["finished"] is True, result.get("error")
    assert all(result["checks"].values()), result["checks"]
    assert (out / "result.md").read_text().startswith("### Scoreboard live windows")

    server = result["server"]
    ws = server["websocket"]
    assert ws["connected"] == ws["snapshot_first"] == CLIENTS
    assert ws["final_states"]["matching"] == CLIENTS and ws["final_states"]["mismatching"] == 0
    # The windows followed the awards: updates arrived, each tied to the award it shows.
    kind = "ranks_update" if channel == "around" else "leaderboard_update"
    assert ws["messages_by_type"][kind] == ws["updates"] + CLIENTS  # + the answer to each subscribe
    assert ws["updates"] > 0 and ws["commit_to_client_ms"]["count"] >= ws["newest_award_to_client_ms"]["count"] > 0
    assert server["award_lines"] == server["replay"]["awards"] == 100
    assert server["server_cpu"]["us_per_award"] > 0


def test_tiny_run_with_nothing_subscribed_measures_the_awards_alone(tmp_path: Path) -> None:
    result = _windows(tmp_path / "out", "--channel", "none")
    assert result["finished"] is True, result.get("error")
    assert all(result["checks"].values()), result["checks"]
    ws = result["server"]["websocket"]
    assert ws["connected"] == CLIENTS and ws["updates"] == 0
    assert "ranks_update" not in ws["messages_by_type"] and "leaderboard_update" not in ws["messages_by_type"]
    assert result["server"]["server_cpu"]["us_per_award"] > 0
