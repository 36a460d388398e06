"""Award events: what a committed award tells the live side, in this process or across many."""

from __future__ import annotations

import msgspec

from .storage import Award


class AwardEvent(msgspec.Struct, frozen=True, kw_only=True, tag="award"):
    """A committed award with the ranks it moved between."""

    award: Award
    previous_rank: int | None
    rank: int
