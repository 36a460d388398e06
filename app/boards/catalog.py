"""The catalog of boards in use: declared in the configuration, created, changed and retired by
operators at run time, kept in the database and read back from it by every process."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import msgspec

from ..errors import BoardNotFound
from ..records import BoardPeriod
from ..settings import BoardSettings
from .board import Board

log = logging.getLogger(__name__)

_encoder = msgspec.json.Encoder(order="deterministic")
_decoder = msgspec.json.Decoder(BoardSettings)


def settings_text(settings: BoardSettings) -> str:
    """A board's settings as stored: every field, in one order, so equal settings compare equal."""
    return _encoder.encode(settings).decode()


class Catalog:
    """The boards in use by id, and which of them the routes without a board mean."""

    def __init__(self, default: str, boards: dict[str, BoardSettings] | None = None) -> None:
        self.default = default
        self.boards: dict[str, Board] = {}
        for board_id, settings in (boards or {}).items():
            self.boards[board_id] = Board(board_id, settings)
        # Listed as the configuration declares them, then those operators made, oldest first.
        self._declared = {board_id: i for i, board_id in enumerate(self.boards)}
        self.retired: dict[str, tuple[Board, int]] = {}  # retired boards, with when (ms)
        self._on_load: list[Callable[[], None]] = []

    def load(self, rows: list[tuple[str, str]], retired: Sequence[tuple[str, str, int]] = ()) -> None:
        """Replace the boards with these database rows (id, settings as JSON), keeping the `Board`
        of every unchanged one (its schedule remembers its current period); and the retired ones
        with when they were retired (id, settings, ms), whose periods fell then."""
        boards: dict[str, Board] = {}
        order = len(self._declared)
        rows = sorted(rows, key=lambda row: self._declared.get(row[0], order))
        for board_id, text in rows:
            held = self.boards.get(board_id)
            board = self._board(board_id, text, held)
            if board is not None:
                boards[board_id] = board
        self.boards = boards
        gone: dict[str, tuple[Board, int]] = {}
        for board_id, text, retired_ms in retired:
            kept = self.retired.get(board_id)
            board = self._board(board_id, text, None if kept is None else kept[0])
            if board is not None:
                gone[board_id] = (board, retired_ms)
        self.retired = gone
        for call in self._on_load:
            call()

    def on_load(self, call: Callable[[], None]) -> None:
        """Call `call` after every load (the boards in use may have changed)."""
        self._on_load.append(call)

    @staticmethod
    def _board(board_id: str, text: str, held: Board | None) -> Board | None:
        """The board of a database row: `held` if its settings are the same; None if not usable here."""
        try:
            settings = _decoder.decode(text)
            return held if held is not None and held.settings == settings else Board(board_id, settings)
        except (msgspec.ValidationError, ValueError) as exc:  # an unknown zone on this machine, say
            log.error("board %s is not usable here and is left out: %s", board_id, exc)
            return None

    def get(self, board_id: str) -> Board:
        """A board in use; BOARD_NOT_FOUND otherwise."""
        board = self.boards.get(board_id)
        if board is None:
            raise BoardNotFound(details={"board": board_id})
        return board

    def find(self, board_id: str) -> Board | None:
        """A board in use, or None."""
        return self.boards.get(board_id)

    def where(self, board_id: str, period: str) -> BoardPeriod:
        """The rank index of a board period named by ids, as a database row names it (a board no
        longer in use counts as highest first)."""
        board = self.boards.get(board_id)
        return BoardPeriod(board=board_id, period=period, ascending=board is not None and board.ascending)

    def listed(self) -> list[Board]:
        """Every board in use, the default one first."""
        default = self.boards.get(self.default)
        return ([default] if default else []) + [b for b in self.boards.values() if b.id != self.default]

    def shelves(self, now_ms: int) -> dict[BoardPeriod, int | None]:
        """Every readable period of every board, with the time it stops being readable."""
        return {board.where(p): board.expire_ms(p) for board in self.boards.values() for p in board.kept(now_ms)}

    def fallen(self, since_ms: int, until_ms: int, *, every_retired: bool = False) -> list[BoardPeriod]:
        """Every period of every board that stopped being readable after `since_ms` and by
        `until_ms` (the Redis keys to let go): a retired board's readable ones fell when it was
        retired; with `every_retired`, those of a board retired before `since_ms` too."""
        fallen = [board.where(p) for board in self.boards.values() for p in board.fallen(since_ms, until_ms)]
        for board, retired_ms in self.retired.values():
            if (every_retired or since_ms < retired_ms) and retired_ms <= until_ms:
                fallen += [board.where(p) for p in board.kept(retired_ms)]
        return fallen
