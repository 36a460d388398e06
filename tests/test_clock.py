"""Timestamps: ISO 8601 UTC with milliseconds, exact at every second boundary."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.clock import iso, now_ms


@pytest.mark.parametrize("ms", [0, 1, 999, 1000, 59_999, 951_782_400_000, 1_764_350_000_123, 253_402_300_799_999])
def test_iso_matches_datetime(ms: int) -> None:
    second, milli = divmod(ms, 1000)
    expected = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{milli:03d}Z"
    assert iso(ms) == expected


def test_iso_of_consecutive_calls_across_a_second() -> None:
    assert [iso(ms) for ms in (1_999, 2_000, 1_999)] == [
        "1970-01-01T00:00:01.999Z",
        "1970-01-01T00:00:02.000Z",
        "1970-01-01T00:00:01.999Z",
    ]
    assert iso(now_ms()).startswith(str(datetime.now(UTC).year))
