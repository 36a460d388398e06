"""The rank index: order, ties, ranks, percentiles, rebuild."""

from __future__ import annotations

import random

from app.ranking import last_change, percentile
from app.ranking.memory import RankIndex
from app.records import Standing, UserRecord, on_board


def _s(user: str, score: int, seq: int) -> Standing:
    return Standing(user_id=user, username=user.upper(), score=score, seq=seq, updated_ms=seq)


def test_order_score_then_first_to_reach_it() -> None:
    board = RankIndex()
    board.put(_s("a", 100, 3))
    board.put(_s("b", 100, 1))
    board.put(_s("c", 300, 2))
    assert [(r, s.user_id) for r, s in board.top(10)] == [(1, "c"), (2, "b"), (3, "a")]
    assert [board.rank(u) for u in "abc"] == [3, 2, 1]
    assert board.rank("nobody") is None and board.get("nobody") is None


def test_put_returns_rank_movement() -> None:
    board = RankIndex()
    assert board.put(_s("a", 100, 1)) == (None, 1)
    assert board.put(_s("b", 50, 2)) == (None, 2)
    assert board.put(_s("b", 150, 3)) == (2, 1)
    assert board.rank("a") == 2


def test_late_older_award_is_ignored() -> None:
    board = RankIndex()
    board.put(_s("a", 200, 5))
    assert board.put(_s("a", 100, 4)) == (1, 1)
    assert board.get("a") == _s("a", 200, 5)


def test_percentile_and_len() -> None:
    board = RankIndex()
    for i in range(4):
        board.put(_s(f"u{i}", 10 * i, i + 1))
    assert len(board) == 4
    assert [percentile(board.rank(f"u{i}") or 0, len(board)) for i in (3, 2, 1, 0)] == [75.0, 50.0, 25.0, 0.0]


def test_load_skips_users_without_award_and_matches_incremental() -> None:
    rng = random.Random(7)
    incremental = RankIndex()
    totals: dict[str, tuple[int, int]] = {}
    for seq in range(1, 500):
        user = f"u{rng.randrange(60)}"
        score = totals.get(user, (0, 0))[0] + rng.choice([0, 10, 100])
        totals[user] = (score, seq)
        incremental.put(_s(user, score, seq))
    records = [UserRecord(user_id=u, username=u.upper(), score=s, seq=q, updated_ms=q) for u, (s, q) in totals.items()]
    records.append(UserRecord(user_id="idle", username="IDLE", score=0, seq=None, updated_ms=None))
    rebuilt = RankIndex()
    rebuilt.load(on_board(records))
    assert rebuilt.top(100) == incremental.top(100)
    assert rebuilt.rank("idle") is None
    expected = sorted(totals, key=lambda u: (-totals[u][0], totals[u][1], u))
    assert [s.user_id for _, s in rebuilt.top(1000)] == expected
    assert all(rebuilt.rank(u) == i for i, u in enumerate(expected, start=1))
    assert last_change(rebuilt.top(1000)) == max(q for _, q in totals.values()) and last_change([]) == 0


def test_rename_keeps_order() -> None:
    board = RankIndex()
    board.put(_s("a", 1, 1))
    board.rename("a", "Renamed")
    board.rename("ghost", "x")
    assert board.top(1)[0][1].username == "Renamed" and board.rank("a") == 1
