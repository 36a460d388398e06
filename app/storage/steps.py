"""A write's steps: a generator that yields each query (text and arguments) and is sent the query's
first row (or None), so one algorithm serves the SQLite writer and asyncpg."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

T = TypeVar("T")
Row = tuple[Any, ...] | None
Query = tuple[str, tuple[Any, ...]]
Steps = Generator[Query, Row, T]  # yields queries, is sent each one's first row, returns the answer


class AllRows(str):
    """A query's text whose steps are sent every row it answers, as a tuple of rows (of no rows,
    an empty tuple), where other queries send the first row: one statement writing many rows."""

    __slots__ = ()
