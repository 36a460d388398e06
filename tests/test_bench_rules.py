"""`python -m bench rules` at a tiny size: both stores measure awards without and with every cheat rule,
none of which holds a bench award (speed is never asserted)."""

from __future__ import annotations

import re

import pytest

from bench import __main__ as bench_main


@pytest.mark.parametrize("mode", ["sqlite", "postgres"])
def test_rules_reports_both_medians(mode: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["rules", "--mode", mode, "--history", "3", "--rounds", "2", "--block", "2", "--step-ms", "5"]
    assert bench_main.main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"none \d+ µs, all five \d+ µs", out), out
