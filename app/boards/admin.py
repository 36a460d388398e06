"""Operators' changes to the catalog: boards created, changed and retired at run time, kept in the
database; every process re-reads the catalog from it (`refresh`)."""

from __future__ import annotations

import logging

import msgspec

from ..api.board_data import BoardChange, BoardCreate, BoardDetail, BoardRetire, RetiredData
from ..auth import Principal
from ..clock import iso
from ..config import ConfigError, check_board
from ..errors import BoardInUse, BoardNotFound, ValidationFailed
from ..records import OperatorAct
from ..settings import ActionSettings, BoardSettings
from ..storage import Store
from ..tasks import pause, stop_if_cancelled
from .catalog import Catalog, settings_text
from .reads import BoardReads

log = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0  # another process's change to the catalog is seen within this
CHANGEABLE = ("title", "keep_periods", "format")  # what PATCH may change on a board in use (BoardChange)


class ListedBoard(msgspec.Struct, frozen=True, kw_only=True):
    """A board as the operator page lists it: its settings, and its current period and entries while
    in use, or when it was retired."""

    id: str
    settings: BoardSettings
    default: bool
    period: str | None  # the current period's id; None once retired
    entries: int | None
    retired_at: str | None


_settings = msgspec.json.Decoder(BoardSettings)


class BoardAdmin:
    """Creates, changes and retires boards for operators (bearers of the admin role)."""

    def __init__(
        self, *, store: Store, catalog: Catalog, reads: BoardReads, actions: dict[str, ActionSettings], admin_role: str
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.reads = reads
        self.actions = actions
        self.admin_role = admin_role

    def check(self, principal: Principal) -> None:
        """FORBIDDEN unless the bearer has the admin role."""
        principal.require_role(self.admin_role)

    async def create(self, principal: Principal, request: BoardCreate) -> BoardDetail:
        """Add a board; it survives restarts."""
        self.check(principal)
        fields = msgspec.structs.asdict(request)
        board_id, reason = fields.pop("id"), fields.pop("reason")
        settings = _checked(board_id, BoardSettings(**fields))
        await self.store.create_board(board_id, settings_text(settings), _act(principal, reason))
        await self.refresh()
        log.warning("board %s created by %s", board_id, principal.user_id)
        return await self.reads.board(board_id)

    async def change(self, principal: Principal, board_id: str, request: BoardChange) -> BoardDetail:
        """Change a board's title, kept periods or format."""
        self.check(principal)
        board = self.catalog.get(board_id)
        changes = {k: v for k in CHANGEABLE if (v := getattr(request, k)) is not None}
        settings = _checked(board_id, msgspec.structs.replace(board.settings, **changes))
        await self.store.change_board(board_id, settings_text(settings), _act(principal, request.reason))
        await self.refresh()
        log.warning("board %s changed by %s: %s", board_id, principal.user_id, sorted(changes))
        return await self.reads.board(board_id)

    async def retire(self, principal: Principal, board_id: str, request: BoardRetire) -> RetiredData:
        """Retire a board (no longer listed, read or written; its rows and history stay); not the
        default board, nor one the action catalog awards on."""
        self.check(principal)
        self.catalog.get(board_id)
        users = [name for name, a in self.actions.items() if board_id in (a.boards or (self.catalog.default,))]
        if board_id == self.catalog.default or users:
            raise BoardInUse(details={"board": board_id, "actions": users, "default": board_id == self.catalog.default})
        await self.store.retire_board(board_id, _act(principal, request.reason))
        await self.refresh()
        log.warning("board %s retired by %s", board_id, principal.user_id)
        return RetiredData(board=board_id, retired=True)

    async def listing(self, principal: Principal) -> list[ListedBoard]:
        """Every board: those in use (the default first) with their current period and entries,
        then the retired ones, oldest retirement first."""
        self.check(principal)
        listed = []
        for board in self.catalog.listed():
            try:
                detail = await self.reads.board(board.id)
            except BoardNotFound:  # retired by another process while this one listed
                continue
            listed.append(
                ListedBoard(
                    id=board.id,
                    settings=board.settings,
                    default=board.id == self.catalog.default,
                    period=detail.period.id,
                    entries=detail.entries,
                    retired_at=None,
                )
            )
        for board_id, text, retired_ms in await self.store.retired_boards():
            settings = _settings.decode(text)
            listed.append(
                ListedBoard(
                    id=board_id, settings=settings, default=False, period=None, entries=None, retired_at=iso(retired_ms)
                )
            )
        return listed

    async def refresh(self) -> None:
        """Read the catalog from the database (the retired boards too: their Redis keys go)."""
        self.catalog.load(await self.store.boards(), await self.store.retired_boards())

    async def run(self) -> None:
        """Re-read the catalog every REFRESH_SECONDS, for the changes other processes make."""
        while True:
            await pause(REFRESH_SECONDS)
            try:
                await self.refresh()
            except Exception:
                stop_if_cancelled()
                log.warning("board catalog refresh failed", exc_info=True)


def _checked(board_id: str, settings: BoardSettings) -> BoardSettings:
    try:
        check_board(board_id, settings)
    except ConfigError as exc:
        # "boards.ID.FIELD: what is wrong": the field in the details, as no schema can state these rules
        where, _, problem = str(exc).partition(": ")
        raise ValidationFailed(problem, details={"board": board_id, "field": where.rsplit(".", 1)[-1]}) from None
    return settings


def _act(principal: Principal, reason: str | None) -> OperatorAct:
    return OperatorAct(operator=principal.user_id, reason=reason or "")
