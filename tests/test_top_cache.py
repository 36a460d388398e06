"""GET /top's answers: kept until a change reaches the places they show, encoded once."""

from __future__ import annotations

import msgspec

from app.api.award_data import TopData
from app.ranking import WATCHED_PLACES
from app.ranking.memory import RankIndex
from app.records import BoardPeriod, Standing
from app.top_cache import TopCache

GLOBAL = BoardPeriod(board="global", period="all")
WEEKLY = BoardPeriod(board="weekly", period="2026-W49")


def _s(user: str, score: int, seq: int) -> Standing:
    return Standing(user_id=user, username=user.upper(), score=score, seq=seq, updated_ms=seq)


def test_version_moves_only_with_the_watched_places() -> None:
    board, cache = RankIndex(), TopCache()
    for i in range(WATCHED_PLACES + 20):  # u0 leads, u119 is last
        board.put(_s(f"u{i}", 10_000 - i, i + 1))
    seq = WATCHED_PLACES + 21

    def put(user: str, score: int) -> int:
        nonlocal seq
        seq += 1
        before = cache.version(GLOBAL)
        cache.moved(GLOBAL, *board.put(_s(user, score, seq)))
        return 0 if cache.version(GLOBAL) == before else 1

    assert put("u119", 10_000 - 110) == 0  # from the last place to the 111th: nothing shown moved
    assert put("new", 1) == 0  # a newcomer at the bottom
    assert put("u110", 10_000 - WATCHED_PLACES + 1) == 0  # to the 101st place: still not shown
    assert put("u115", 10_000 - 5) == 1  # into the watched places
    assert board.rank(f"u{WATCHED_PLACES - 1}") == WATCHED_PLACES + 1  # pushed out: seen above
    assert put("u1", 2) == 1  # out of the watched places
    before = cache.version(GLOBAL)
    assert board.rename("u119", "Renamed") and not board.rename("u119", "Renamed")
    cache.changed()  # what the service does when a rename changed a name
    assert cache.version(GLOBAL) != before


def test_an_answer_is_kept_per_limit_until_a_change_and_encoded_once() -> None:
    board, cache = RankIndex(), TopCache()
    board.put(_s("a", 10, 1))
    version = cache.version(GLOBAL)
    assert cache.get((GLOBAL, 10), version) is None
    answer = cache.answer(GLOBAL, 10, version, board.top(10))
    assert cache.get((GLOBAL, 10), version) is answer and cache.get((GLOBAL, 5), version) is None
    body = msgspec.json.decode(answer.body)
    assert body["success"] is True and body["data"]["leaderboard"][0]["userId"] == "a"
    cache.moved(GLOBAL, None, 1)
    assert cache.get((GLOBAL, 10), cache.version(GLOBAL)) is None  # a newer version: read again
    again = cache.answer(GLOBAL, 10, cache.version(GLOBAL), board.top(10))
    assert isinstance(again.data, TopData) and isinstance(answer.data, TopData)
    assert again.data.leaderboard[0] is answer.data.leaderboard[0]  # unchanged entries are reused


def test_an_empty_board_is_not_kept() -> None:
    cache = TopCache()
    cache.answer(GLOBAL, 10, cache.version(GLOBAL), [])
    assert cache.get((GLOBAL, 10), cache.version(GLOBAL)) is None


def test_max_age_turns_the_version_over() -> None:
    cache = TopCache(max_age=1e-9)
    first = cache.version(GLOBAL)
    assert any(cache.version(GLOBAL) != first for _ in range(1000))


def test_versions_are_per_board_period() -> None:
    cache = TopCache()
    weekly, overall = cache.version(WEEKLY), cache.version(GLOBAL)
    cache.moved(WEEKLY, None, 1)
    assert cache.version(WEEKLY) != weekly and cache.version(GLOBAL) == overall
    cache.changed()  # a rename or a gap: every board
    assert cache.version(GLOBAL) != overall
