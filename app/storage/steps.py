"""A write's steps: a generator that yields each query (text and arguments) and is sent the query's
first row (or None), so one algorithm serves the SQLite writer and asyncpg."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

from ..errors import PeriodEnded

T = TypeVar("T")
Row = tuple[Any, ...] | None
Query = tuple[str, tuple[Any, ...]]
Steps = Generator[Query, Row, T]  # yields queries, is sent each one's first row, returns the answer


def in_period(ends_ms: int | None, clock: Callable[[], int], steps: Steps[T]) -> Steps[T]:
    """`steps`, refused with PeriodEnded, before any query, when the write's period ended (at
    `ends_ms`) by the time they begin: a write counts in the period in which its transaction runs."""
    if ends_ms is not None and clock() >= ends_ms:
        raise PeriodEnded()
    return (yield from steps)


class AllRows(str):
    """A query's text whose steps are sent every row it answers, as a tuple of rows (of no rows,
    an empty tuple), where other queries send the first row: one statement writing many rows."""

    __slots__ = ()
