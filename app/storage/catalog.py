"""The board catalog's rows: boards declared in the configuration, created, changed and retired by
operators. The statements, written once for SQLite and PostgreSQL, and the steps of each write."""

from __future__ import annotations

from ..errors import BoardExists, BoardNotFound
from ..records import OperatorAct
from .moderation import RECORD_ACT
from .schema import Dialect
from .steps import Steps

BOARDS = "SELECT id, settings FROM boards WHERE retired_at IS NULL ORDER BY created_at, id"
RETIRED_BOARDS = "SELECT id, settings, retired_at FROM boards WHERE retired_at IS NOT NULL ORDER BY retired_at, id"
BOARD_ROW = "SELECT settings, declared, retired_at FROM boards WHERE id = $1"
INSERT_BOARD = (
    "INSERT INTO boards (id, settings, declared, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) "
    "ON CONFLICT (id) DO NOTHING RETURNING 1"
)
DECLARE_BOARD = "UPDATE boards SET settings = $1, declared = $1, updated_at = $2, retired_at = NULL WHERE id = $3"
UPDATE_BOARD = "UPDATE boards SET settings = $1, updated_at = $2 WHERE id = $3 AND retired_at IS NULL RETURNING 1"
RETIRE_BOARD = "UPDATE boards SET retired_at = $1, updated_at = $1 WHERE id = $2 AND retired_at IS NULL RETURNING 1"


class Statements:
    """The catalog's statements in one dialect, and the steps of its writes."""

    def __init__(self, dialect: Dialect) -> None:
        sql = dialect.sql
        self.boards = sql(BOARDS)
        self.retired_boards = sql(RETIRED_BOARDS)
        self.board_row = sql(BOARD_ROW)
        self.insert_board = sql(INSERT_BOARD)
        self.declare_board = sql(DECLARE_BOARD)
        self.update_board = sql(UPDATE_BOARD)
        self.retire_board = sql(RETIRE_BOARD)
        self.record_act = sql(RECORD_ACT)

    # Each operator's act on the catalog is a row of the moderation record in its transaction
    # (action, operator, reason, the board, the settings it set): sealed onto the audit chain.
    def create_board(self, board_id: str, settings: str, by: OperatorAct, now_ms: int) -> Steps[None]:
        """Add a board made at run time; BOARD_EXISTS for an id in use or retired."""
        if (yield self.insert_board, (board_id, settings, None, now_ms)) is None:
            raise BoardExists(details={"board": board_id})
        yield self._recorded("create_board", board_id, settings, by, now_ms)

    def change_board(self, board_id: str, settings: str, by: OperatorAct, now_ms: int) -> Steps[None]:
        """Replace a board's settings; BOARD_NOT_FOUND for an unknown or retired board."""
        if (yield self.update_board, (settings, now_ms, board_id)) is None:
            raise BoardNotFound(details={"board": board_id})
        yield self._recorded("change_board", board_id, settings, by, now_ms)

    def retire(self, board_id: str, by: OperatorAct, now_ms: int) -> Steps[None]:
        """Retire a board: no longer listed, read or written; its rows stay."""
        if (yield self.retire_board, (now_ms, board_id)) is None:
            raise BoardNotFound(details={"board": board_id})
        yield self._recorded("retire_board", board_id, None, by, now_ms)

    def _recorded(
        self, action: str, board_id: str, settings: str | None, by: OperatorAct, now_ms: int
    ) -> tuple[str, tuple[object, ...]]:
        return self.record_act, (action, by.operator, by.reason, None, board_id, None, None, settings, now_ms)

    def declare(self, declared: dict[str, str], now_ms: int) -> Steps[list[str]]:
        """Apply the configuration's boards: add the new ones; a declaration that differs from the
        one applied last (an edited file) replaces the board's settings, and brings it back if
        retired; an unchanged declaration leaves what operators did since. The ids of the boards
        replaced (a shared rank index holds them as they were, or not at all if retired)."""
        replaced = []
        for board_id, settings in declared.items():
            if (yield self.insert_board, (board_id, settings, settings, now_ms)) is not None:
                continue
            row = yield self.board_row, (board_id,)
            if row is not None and row[1] != settings:
                yield self.declare_board, (settings, now_ms, board_id)
                replaced.append(board_id)
        return replaced
