"""The live page's content: which board it shows, that board's top as text, and a tab per board.
static/format.js renders scores and period names the same way for the updates that follow."""

from __future__ import annotations

import re

import msgspec

from ..boards.board import CURRENT
from ..boards.reads import BoardReads
from ..ranking import TOP_SIZE
from .models import BoardData, BoardTopData

# A board id as the catalog allows it. Matched before any look-up: whatever else the query holds
# (markup, control characters, U+FFFD from broken percent-escapes, kilobytes of it) is never used.
_BOARD_ID = re.compile(r"[a-z0-9_-]{1,64}")

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_WEEK = re.compile(r"[0-9]{4}-W[0-9]{2}")
_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")
_CRON = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2}:[0-9]{2})")

UNKNOWN_BOARD = "There is no board with that id; showing {title}."


def duration_text(ms: int) -> str:
    """A time in milliseconds as m:ss.mmm, or h:mm:ss.mmm from one hour on (61234 -> 1:01.234)."""
    sign = "-" if ms < 0 else ""
    seconds, millis = divmod(abs(ms), 1000)
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{sign}{hours}:{minutes:02d}:{secs:02d}.{millis:03d}"
    return f"{sign}{minutes}:{secs:02d}.{millis:03d}"


def score_text(score: int, board_format: str) -> str:
    """A score as a board of this format shows it."""
    return duration_text(score) if board_format == "duration_ms" else str(score)


def period_label(period_id: str) -> str:
    """A period id as people read it: "Week 2026-W49", "Day 2026-12-02", "All time"."""
    if period_id == "all":
        return "All time"
    if _WEEK.fullmatch(period_id):
        return f"Week {period_id}"
    if _DAY.fullmatch(period_id):
        return f"Day {period_id}"
    if _MONTH.fullmatch(period_id):
        return f"Month {period_id}"
    cron = _CRON.fullmatch(period_id)
    if cron:
        return f"Period from {cron[1]} {cron[2]}"
    return period_id


def chosen_board(asked: str | None, boards: list[BoardData]) -> tuple[BoardData, bool]:
    """The board `?board=` names, or the default one (listed first); True when the query named a
    board that is not there (so the page says so)."""
    by_id = {board.id: board for board in boards}
    if not asked:
        return boards[0], False
    found = by_id.get(asked) if _BOARD_ID.fullmatch(asked) else None
    return (found, False) if found is not None else (boards[0], True)


class Tab(msgspec.Struct, frozen=True, kw_only=True):
    """A board's link at the top of the page."""

    id: str
    title: str
    format: str
    order: str
    period: str
    selected: bool


class Row(msgspec.Struct, frozen=True, kw_only=True):
    """A place of the top, ready to render."""

    rank: int
    user_id: str
    username: str
    score: int
    shown: str  # the score as text, in the board's format


async def page_context(reads: BoardReads, asked: str | None) -> dict[str, object]:
    """What templates/index.html renders for `GET /?board=<asked>`."""
    listed = reads.boards().boards
    board, unknown = chosen_board(asked, listed)
    data = (await reads.top(board.id, CURRENT, TOP_SIZE)).data
    assert isinstance(data, BoardTopData)
    return {
        "board": board,
        "period_label": period_label(board.period.id),
        "notice": UNKNOWN_BOARD.format(title=board.title) if unknown else None,
        "tabs": [
            Tab(
                id=b.id,
                title=b.title,
                format=b.format,
                order=b.order,
                period=b.period.id,
                selected=b.id == board.id,
            )
            for b in listed
        ],
        "leaderboard": [
            Row(
                rank=e.rank,
                user_id=e.user_id,
                username=e.username,
                score=e.score,
                shown=score_text(e.score, board.format),
            )
            for e in data.leaderboard
        ],
        "updated_at": data.updated_at,
        "static_url": "/static",
    }
