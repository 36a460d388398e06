"""Top answers, rendered and encoded once per change of the places they show: most reads arrive
between two such changes. One object, owned by the services, told of every change of every board."""

from __future__ import annotations

import time
from collections.abc import Hashable

import msgspec

from .api.award_data import BoardEntry, TopData
from .api.envelope import etag_of, ok_body
from .clock import iso, now_ms
from .ranking import WATCHED_PLACES, last_change, reaches_watched
from .records import AwardEvent, BoardPeriod, Standing

MAX_ENTRIES = 4 * WATCHED_PLACES  # rendered entries kept for reuse
MAX_ANSWERS = 1024  # answers kept (board periods x limits x shapes); beyond, the cache starts over


class TopAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """A top, as data, as the encoded response body and as that body's entity tag (hashed once
    per answer, not per request)."""

    data: object
    body: bytes
    etag: str


class TopCache:
    """Answers per (board period, limit, shape) under a version that changes with every change that
    can reach the first WATCHED_PLACES places of that board period: a write that moves into or
    within them, a rename or a load (every board), a gap in the events (every board). With
    `max_age` versions also turn over that often, for changes nobody announces (a rename in
    another process)."""

    def __init__(self, *, max_age: float | None = None) -> None:
        self.max_age = max_age
        self._all = 0  # changes of every board
        self._changes: dict[BoardPeriod, int] = {}
        self._answers: dict[Hashable, tuple[Hashable, TopAnswer]] = {}
        self._entries: dict[tuple[int, Standing], BoardEntry] = {}  # (rank, standing) -> its entry

    def version(self, where: BoardPeriod) -> Hashable:
        """Equal values: the watched places of this board period did not change in between."""
        if self.max_age is None:
            return self._all, self._changes.get(where, 0)
        return self._all, self._changes.get(where, 0), int(time.monotonic() / self.max_age)

    def changed(self, where: BoardPeriod | None = None) -> None:
        """Something the answers of this board period (None: of every board) may show changed."""
        if where is None:
            self._all += 1
        else:
            self._changes[where] = self._changes.get(where, 0) + 1

    def moved(self, where: BoardPeriod, previous_rank: int | None, rank: int) -> None:
        """A user moved between these ranks."""
        if reaches_watched(previous_rank, rank):
            self.changed(where)

    def on_award(self, event: AwardEvent) -> None:
        """A write from any process."""
        for move in event.moves:
            self.moved(move.change.where, move.previous_rank, move.rank)

    def get(self, key: Hashable, version: Hashable) -> TopAnswer | None:
        """The answer kept for this key, if made under this version."""
        kept = self._answers.get(key)
        return kept[1] if kept is not None and kept[0] == version else None

    def keep(self, key: Hashable, version: Hashable, answer: TopAnswer) -> None:
        """Keep an answer made under `version` for the next reads."""
        if len(self._answers) >= MAX_ANSWERS:
            self._answers.clear()
        self._answers[key] = (version, answer)

    def answer(self, where: BoardPeriod, limit: int, version: Hashable, top: list[tuple[int, Standing]]) -> TopAnswer:
        """Render GET /scoreboard/top's answer read under `version`, and keep it."""
        # When what is shown last changed: an award further down changes neither the answer nor this.
        data = TopData(leaderboard=[self._entry(place) for place in top], updated_at=iso(last_change(top) or now_ms()))
        answer = encoded(data)
        if top:  # an empty board's updatedAt is "now": not kept
            self.keep((where, limit), version, answer)
        return answer

    def _entry(self, place: tuple[int, Standing]) -> BoardEntry:
        # An award moves one or two entries of a top 10; the others are built once and reused.
        entry = self._entries.get(place)
        if entry is None:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            rank, s = place
            entry = self._entries[place] = BoardEntry(
                rank=rank, user_id=s.user_id, username=s.username, score=s.score, last_updated=iso(s.updated_ms)
            )
        return entry


def encoded(data: object) -> TopAnswer:
    """An answer of this data: its envelope body and entity tag."""
    body = ok_body(data)
    return TopAnswer(data=data, body=body, etag=etag_of(body))
