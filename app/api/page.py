"""The live page's content: the game's name, which board it shows, that board's top as text with
its ties explained, how many players it has, and a tab per board. static/format.js renders scores,
period names, ties and the player count the same way for the updates that follow."""

from __future__ import annotations

import re

import msgspec

from ..boards.board import CURRENT
from ..boards.reads import BoardReads
from ..ranking import TOP_SIZE
from .board_data import BoardData

# A board id as the catalog allows it. Matched before any look-up: whatever else the query holds
# (markup, control characters, U+FFFD from broken percent-escapes, kilobytes of it) is never used.
_BOARD_ID = re.compile(r"[a-z0-9_-]{1,64}")

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_WEEK = re.compile(r"[0-9]{4}-W[0-9]{2}")
_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")
_CRON = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2}:[0-9]{2})")

UNKNOWN_BOARD = "There is no board with that id; showing {title}."

# Why one of two equal scores is ahead, as app/ranking/ties.py orders them: the subscore (when a
# trusted server gave one) the board's way, then the lower write sequence, i.e. who got there first.
TIE_FIRST = "first"
TIE_SUBSCORE = "subscore"
TIE_TITLES = {
    TIE_FIRST: "Same score as the player next to them: whoever reached it first ranks higher",
    TIE_SUBSCORE: "Same score as the player next to them: the game's tie-break decides, then who reached it first",
}
TIE_LEGENDS = {
    TIE_FIRST: "Same score: whoever reached it first ranks higher.",
    TIE_SUBSCORE: "Same score: the game's tie-break decides, then whoever reached it first ranks higher.",
}


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


def players_text(total: int) -> str:
    """How many players a board period has, as the page says it: "1 player", "1,234 players"."""
    return "1 player" if total == 1 else f"{total:,} players"


def tie_reasons(scores: list[tuple[int, int | None]]) -> list[str | None]:
    """For each (score, subscore) of a top in rank order: None when nobody else shown has that
    score, else why the tied ones are in this order (TIE_FIRST, or TIE_SUBSCORE when their
    subscores differ). An absent subscore counts as 0, as in the ranking."""
    reasons: list[str | None] = [None] * len(scores)
    start = 0
    while start < len(scores):
        end = start
        while end + 1 < len(scores) and scores[end + 1][0] == scores[start][0]:
            end += 1
        if end > start:
            subscores = {subscore or 0 for _, subscore in scores[start : end + 1]}
            reason = TIE_FIRST if len(subscores) == 1 else TIE_SUBSCORE
            reasons[start : end + 1] = [reason] * (end + 1 - start)
        start = end + 1
    return reasons


def tie_legend(reasons: list[str | None]) -> str | None:
    """The line under the table that explains the ties shown, if any."""
    if TIE_SUBSCORE in reasons:
        return TIE_LEGENDS[TIE_SUBSCORE]
    return TIE_LEGENDS[TIE_FIRST] if TIE_FIRST in reasons else None


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
    tie_title: str | None  # the hint on a row whose score another row shown has too


async def page_context(reads: BoardReads, asked: str | None, *, title: str) -> dict[str, object]:
    """What templates/index.html renders for `GET /?board=<asked>`, in a game named `title`."""
    listed = reads.boards().boards
    board, unknown = chosen_board(asked, listed)
    # The rank range rather than the top: the same entries, and the board's size with them.
    data = await reads.ranks(board.id, 1, TOP_SIZE, CURRENT)
    reasons = tie_reasons([(e.score, e.subscore) for e in data.leaderboard])
    return {
        "title": title,
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
                tie_title=TIE_TITLES[reason] if reason else None,
            )
            for e, reason in zip(data.leaderboard, reasons, strict=True)
        ],
        "tie_legend": tie_legend(reasons),
        "players": players_text(data.total),
        "updated_at": data.updated_at,
        "static_url": "/static",
    }
