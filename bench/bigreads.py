"""The reads of `python -m bench bigboard`: what each pass asks of pick i, and how its answer is
checked against the reference board (`bigdata.Population`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from .bigdata import DEFAULT_BOARD, Population

RADIUS, RANGE_LIMIT = 5, 10


class _Score(msgspec.Struct):
    userId: str
    score: int
    rank: int | None


class _ScoreReply(msgspec.Struct):
    data: _Score


class _Entry(msgspec.Struct):
    rank: int
    userId: str
    score: int


class _Around(msgspec.Struct):
    rank: int | None
    entries: list[_Entry]
    total: int


class _AroundReply(msgspec.Struct):
    data: _Around


class _Range(msgspec.Struct):
    leaderboard: list[_Entry]
    total: int


class _RangeReply(msgspec.Struct):
    data: _Range


_decode_score = msgspec.json.Decoder(_ScoreReply).decode
_decode_around = msgspec.json.Decoder(_AroundReply).decode
_decode_range = msgspec.json.Decoder(_RangeReply).decode

# What one pass asks: the URL of pick i, and the answer checked against the reference (None: right).
Ask = Callable[[int], str]
Check = Callable[[int, bytes], dict[str, Any] | None]


def _entries_wrong(entries: list[_Entry], first: int, last: int, population: Population) -> dict[str, Any] | None:
    """The entries of ranks first..last, each the reference's user with its score."""
    expected = list(range(max(first, 1), min(last, len(population)) + 1))
    if [e.rank for e in entries] != expected:
        return {"ranks": [e.rank for e in entries][:12], "expected": expected[:12]}
    for e in entries:
        i = population.at_rank(e.rank)
        if e.userId != population.user_id(i) or e.score != population.scores[i]:
            return {"rank": e.rank, "user": e.userId, "expected": population.user_id(i)}
    return None


def lookup_pass(base: str, population: Population) -> tuple[Ask, Check]:
    """GET /users/{id}/score: the default board's rank and score of user i."""

    def ask(i: int) -> str:
        return f"{base}/api/v1/users/{population.user_id(i)}/score"

    def check(i: int, payload: bytes) -> dict[str, Any] | None:
        a = _decode_score(payload).data
        if (
            a.userId != population.user_id(i)
            or a.score != population.scores[i]
            or a.rank != population.reference_rank(i)
        ):
            return {"user": a.userId, "rank": a.rank, "expected": population.reference_rank(i), "score": a.score}
        return None

    return ask, check


def around_pass(base: str, population: Population) -> tuple[Ask, Check]:
    """GET /boards/global/around/{id}?radius=5: user i's rank and the 11 entries around it."""

    def ask(i: int) -> str:
        return f"{base}/api/v1/boards/{DEFAULT_BOARD}/around/{population.user_id(i)}?radius={RADIUS}"

    def check(i: int, payload: bytes) -> dict[str, Any] | None:
        a = _decode_around(payload).data
        rank = population.reference_rank(i)
        if a.rank != rank or a.total != len(population):
            return {"user": population.user_id(i), "rank": a.rank, "expected": rank, "total": a.total}
        return _entries_wrong(a.entries, rank - RADIUS, rank + RADIUS, population)

    return ask, check


def range_pass(base: str, population: Population) -> tuple[Ask, Check]:
    """GET /boards/global/ranks?from=R&limit=10 with R = pick + 1: ten entries from rank R."""

    def ask(i: int) -> str:
        return f"{base}/api/v1/boards/{DEFAULT_BOARD}/ranks?from={i + 1}&limit={RANGE_LIMIT}"

    def check(i: int, payload: bytes) -> dict[str, Any] | None:
        a = _decode_range(payload).data
        if a.total != len(population):
            return {"from": i + 1, "total": a.total}
        return _entries_wrong(a.leaderboard, i + 1, i + RANGE_LIMIT, population)

    return ask, check
