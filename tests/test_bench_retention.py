"""`python -m bench retention` at a tiny size, on SQLite: it purges every old row it made and
reports both loops (speed is never asserted)."""

from __future__ import annotations

import json

import pytest

from bench import __main__ as bench_main


def test_retention_bench_purges_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["retention", "--awards", "300", "--users", "10", "--workers", "2", "--quiet-seconds", "0.3"]
    assert bench_main.main(args) == 0
    result = json.loads(capsys.readouterr().out)
    # Every old change and award but each player's last, or all of them once the loop moved the
    # entries on: at least the 290 players' earlier ones.
    assert 2 * 290 <= result["rows_deleted"] <= 2 * 300
    assert result["windows"] >= 2
    assert result["awards_alone"]["awards"] > 0 and result["awards_during_purge"]["awards"] > 0
