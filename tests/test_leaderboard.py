"""The ranking's helpers: percentiles, and when the standings shown last changed. The rankings
themselves (order, ties, ranks, fills) are tested by tests/test_ranking_contract.py."""

from __future__ import annotations

from app.ranking import last_change, percentile
from app.records import Standing


def _s(user: str, score: int, seq: int) -> Standing:
    return Standing(user_id=user, username=user.upper(), score=score, seq=seq, updated_ms=seq)


def test_percentile() -> None:
    assert [percentile(rank, 4) for rank in (1, 2, 3, 4)] == [75.0, 50.0, 25.0, 0.0]
    assert percentile(1, 3) == 66.67 and percentile(1, 1) == 0.0


def test_last_change_is_the_newest_award_shown() -> None:
    shown = [(1, _s("a", 300, 2)), (2, _s("b", 200, 9)), (3, _s("c", 100, 4))]
    assert last_change(shown) == 9
    assert last_change([]) == 0
