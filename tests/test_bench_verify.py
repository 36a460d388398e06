"""`python -m bench verify` at a tiny size: every case runs and is reported (speed is never asserted)."""

from __future__ import annotations

import json

import pytest

from bench import __main__ as bench_main


def test_verify_reports_every_case(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main.main(["verify", "--calls", "8", "--rounds", "1", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert set(results) == {
        "action token",
        "bearer HS256, first sight",
        "bearer, remembered (from_header)",
        "bearer RS256, first sight",
        "bearer ES256, first sight",
        "bearer EdDSA, first sight",
    }
    assert all(value > 0 for value in results.values())
