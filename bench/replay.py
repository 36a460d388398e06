"""The board replayed from the written population and the server's "Score updated" lines (in the
order it placed the awards): after each award, the windows it changed and what they show, so a
client's state names the newest award it reflects and every award the windows it must reach."""

from __future__ import annotations

import bisect
import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .bigdata import Population

Row = tuple[int, str, int]  # rank, userId, score
State = tuple[Row, ...]  # a window's rows by rank
TOP_SIZE = 10  # the leaderboard channel's window: ranks 1..10
AWARD_LINE = "Score updated"


@dataclass(frozen=True)
class Placed:
    """One award as the server logged it once committed and placed."""

    user_id: str
    previous: int
    new: int
    at: float  # epoch seconds (the line's millisecond timestamp)
    action_id: str


def award_lines(log_path: Path) -> list[Placed]:
    """The server's award lines, in the order written."""
    found = []
    with log_path.open(errors="replace") as lines:
        for line in lines:
            if AWARD_LINE not in line:
                continue
            with contextlib.suppress(ValueError, KeyError):
                e = json.loads(line)
                if e.get("message") == AWARD_LINE:
                    at = datetime.fromisoformat(e["timestamp"]).timestamp()
                    found.append(Placed(e["userId"], e["previousScore"], e["newScore"], at, e["actionId"]))
    return found


@dataclass
class Reference:
    """What the replay found: every window state with the award that made it (0: before the load),
    the awards that changed each owner's window, and each owner's window at the end."""

    first_seen: dict[State, int] = field(default_factory=dict)
    changed: dict[str, list[int]] = field(default_factory=dict)  # owner -> awards (1-based)
    final: dict[str, State] = field(default_factory=dict)
    commits: list[float] = field(default_factory=list)  # award k's commit time at index k (0: unused)
    inconsistent: int = 0  # awards whose previous score was not the replayed one (order or data off)


class Replay:
    """The population's board (score descending, then the lower seq), one award at a time; windows
    of `owners`: `radius` ranks around each (None: the top 10, the same for all)."""

    def __init__(self, population: Population, owners: Iterable[str], radius: int | None) -> None:
        self.radius = radius
        scores, seqs = population.scores, population.seqs
        self.keys = sorted((-scores[i], seqs[i], i) for i in range(len(population)))
        self.current = {k[2]: k for k in self.keys}
        self.next_seq = len(population) + 1  # the server's history ids go on after the ones written
        self.owners = {_index(u) for u in owners}
        self.ref = Reference(commits=[0.0])
        self.shown: dict[int, State] = {}
        if radius is None:
            self._note(-1, 0)
        else:
            for rank, key in enumerate(self.keys, start=1):
                if key[2] in self.owners:
                    self._note(key[2], rank)

    def _rows(self, first: int, last: int) -> State:
        keys = self.keys
        return tuple((r, f"user-{keys[r - 1][2]}", -keys[r - 1][0]) for r in range(max(1, first), last + 1))

    def _note(self, owner: int, rank: int) -> None:
        """The owner's window now (owner -1, rank 0: the top 10); a change is recorded."""
        if self.radius is None:
            state = self._rows(1, min(TOP_SIZE, len(self.keys)))
        else:
            state = self._rows(rank - self.radius, min(rank + self.radius, len(self.keys)))
        if self.shown.get(owner) == state:
            return
        k = len(self.ref.commits) - 1
        self.shown[owner] = state
        self.ref.first_seen.setdefault(state, k)
        if k:
            self.ref.changed.setdefault("*" if owner < 0 else f"user-{owner}", []).append(k)

    def place(self, award: Placed) -> None:
        """Apply one award (a user already on the board) and note the windows it changed."""
        i = _index(award.user_id)
        old = self.current[i]
        if -old[0] != award.previous:
            self.ref.inconsistent += 1
        at = bisect.bisect_left(self.keys, old)
        del self.keys[at]
        new = self.current[i] = (-award.new, self.next_seq, i)
        self.next_seq += 1
        to = bisect.bisect_left(self.keys, new)
        self.keys.insert(to, new)
        self.ref.commits.append(award.at)
        low, high = min(at, to) + 1, max(at, to) + 1  # the ranks whose occupant changed
        if self.radius is None:
            if low <= TOP_SIZE:
                self._note(-1, 0)
            return
        for rank in range(max(1, low - self.radius), min(len(self.keys), high + self.radius) + 1):
            owner = self.keys[rank - 1][2]
            if owner in self.owners:
                self._note(owner, rank)

    def finish(self) -> Reference:
        """The reference after every award placed."""
        if self.radius is None:
            self.ref.final = {f"user-{o}": self.shown[-1] for o in self.owners}
        else:
            self.ref.final = {f"user-{o}": self.shown[o] for o in self.owners}
        return self.ref


def _index(user_id: str) -> int:
    return int(user_id.removeprefix("user-"))


def replay(population: Population, owners: Iterable[str], radius: int | None, awards: Iterable[Placed]) -> Reference:
    """Every award placed in order; the reference."""
    board = Replay(population, owners, radius)
    for award in awards:
        board.place(award)
    return board.finish()
