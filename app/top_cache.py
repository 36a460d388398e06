"""GET /top's answers, rendered and encoded once per change of the places they show: most reads
arrive between two such changes. One object, owned by the service, told of every change."""

from __future__ import annotations

import time
from collections.abc import Hashable

import msgspec

from .api.envelope import etag_of, ok_body
from .api.models import BoardEntry, TopData
from .clock import iso, now_ms
from .ranking import WATCHED_PLACES, last_change, reaches_watched
from .records import AwardEvent, Standing

MAX_ENTRIES = 4 * WATCHED_PLACES  # rendered entries kept for reuse


class TopAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The top of the board, as data, as the encoded response body and as that body's entity tag
    (hashed once per answer, not per request)."""

    data: TopData
    body: bytes
    etag: str


class TopCache:
    """Answers per limit under a version that changes with every change that can reach the first
    WATCHED_PLACES places: an award that moves into or within them, a rename, a load, a gap in
    the events. With `max_age` the version also turns over that often, for changes nobody
    announces (a rename in another process)."""

    def __init__(self, *, max_age: float | None = None) -> None:
        self.max_age = max_age
        self._changes = 0
        self._answers: dict[int, tuple[Hashable, TopAnswer]] = {}
        self._entries: dict[tuple[int, Standing], BoardEntry] = {}  # (rank, standing) -> its entry

    def version(self) -> Hashable:
        """Equal values: the watched places did not change in between."""
        if self.max_age is None:
            return self._changes
        return self._changes, int(time.monotonic() / self.max_age)

    def changed(self) -> None:
        """Something the answers show may have changed."""
        self._changes += 1

    def moved(self, previous_rank: int | None, rank: int) -> None:
        """A user moved between these ranks."""
        if reaches_watched(previous_rank, rank):
            self._changes += 1

    def on_award(self, event: AwardEvent) -> None:
        """An award from any process."""
        self.moved(event.previous_rank, event.rank)

    def get(self, limit: int, version: Hashable) -> TopAnswer | None:
        """The answer kept for this limit, if made under this version."""
        kept = self._answers.get(limit)
        return kept[1] if kept is not None and kept[0] == version else None

    def answer(self, limit: int, version: Hashable, top: list[tuple[int, Standing]]) -> TopAnswer:
        """Render the top read under `version`, and keep it for the next reads."""
        # When what is shown last changed: an award further down changes neither the answer nor this.
        data = TopData(leaderboard=[self._entry(place) for place in top], updated_at=iso(last_change(top) or now_ms()))
        body = ok_body(data)
        answer = TopAnswer(data=data, body=body, etag=etag_of(body))
        if top:  # an empty board's updatedAt is "now": not kept
            self._answers[limit] = (version, answer)
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
