"""The big-board benchmark at tiny size, end to end: it asserts correctness (every lookup, around-me
and rank range answered with the reference's ranks, the rebuild logged), never speed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .bench_cli import run_bench

USERS, LOOKUPS, READS = 2000, 300, 200


def _bigboard(out: Path, *options: str) -> dict[str, Any]:
    """Run `python -m bench bigboard` tiny; its result.json."""
    size = ("--users", str(USERS), "--lookups", str(LOOKUPS), "--reads", str(READS))
    return run_bench(out, "bigboard", "--mode", "embedded", *size, "--timeout", "100", *options, within=120)


def test_tiny_big_board_answers_every_lookup_with_the_reference_rank(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _bigboard(out, "--read-rounds", "2")
    assert (out / "result.md").read_text().startswith("### Scoreboard big board")
    assert result["finished"] is True, result.get("error")
    assert all(result["checks"].values()), result["checks"]

    server = result["server"]
    # x8 in flight, then one at a time; the default board's around-me and rank range one at a time
    for key, count in (
        ("lookups", LOOKUPS),
        ("lookups_serial", LOOKUPS),
        ("around_serial", READS),
        ("range_serial", READS),
    ):
        lookups = server[key]
        assert lookups["sent"] == lookups["ok"] == count
        assert lookups["statuses"] == {"200": count} and lookups["errors"] == {}
        answers = lookups["checks"]
        assert answers["answers"] == answers["reference_checked"] == count
        assert answers["reference_mismatches"] == 0, answers["first_mismatches"]
        assert lookups["latency_ms"]["p99"] is not None
    assert server["around_serial"]["concurrency"] == server["range_serial"]["concurrency"] == 1
    assert {"lookup", "around", "range"} <= set(server["server_side_ms"])  # from the access log
    assert [set(r) for r in server["read_rounds"]] == [{"around_serial", "range_serial"}]  # the second round
    assert len(result["targets"]["around_p99_ms_over_http_serial"]["rounds"]) == 2

    rebuild = server["rebuild"]
    assert rebuild is not None and rebuild["standings"] == USERS and rebuild["board_periods"] == 1
    assert isinstance(rebuild["seconds"], int | float)
    assert server["start_to_ready_seconds"] > 0 and server["rss_mib_after_rebuild"] > 0
    assert server["server_exit_code"] == 0

    index = result["index"]
    assert index["rows"] == USERS
    assert index["rank"]["count"] == LOOKUPS and index["rank"]["reference_mismatches"] == 0
    assert set(result["targets"]) >= {
        "rank_lookup_p99_ms_in_index",
        "rebuild_seconds_server_log",
        "around_p99_ms_over_http_serial",
        "range_p99_ms_over_http_serial",
    }


def test_tiny_boards_rebuild_fills_every_board_at_start(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _bigboard(out, "--boards", "3")
    assert result["finished"] is True, result.get("error")
    assert all(result["checks"].values()), result["checks"]
    assert (out / "result.md").read_text().startswith("### Scoreboard big board: 3 x 2,000 entries")
    rebuild = result["server"]["rebuild"]
    assert rebuild["standings"] == 3 * USERS and rebuild["board_periods"] == 3
    assert isinstance(rebuild["seconds"], int | float) and result["server"]["start_to_ready_seconds"] > 0
    assert result["targets"]["start_to_ready_seconds"]["limit"] == 15.0
