"""Keeps the Redis board loaded: at start, and whenever Redis comes back empty or missed an award."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ..errors import ServiceUnavailable
from .board import RedisBoard
from .client import stop_if_cancelled

log = logging.getLogger(__name__)

CHECK_SECONDS = 1.0  # a flushed board is rebuilt within about this, plus the load itself


async def ensure_loaded(board: RedisBoard, rebuild: Callable[[], Awaitable[None]]) -> bool:
    """Rebuild from the database if the board needs it and no other process is at it."""
    if not await board.needs_load():
        return False
    mark = await board.lock_rebuild()
    if mark is None:
        return False
    try:
        asked = await board.reload_asked()  # before the database is read: a later request stays
        log.info("rebuilding the Redis board from the database")
        await rebuild()
        if asked is not None:
            await board.reload_done(asked)
    finally:
        await board.unlock_rebuild(mark)
    return True


async def keep_loaded(board: RedisBoard, rebuild: Callable[[], Awaitable[None]]) -> None:
    """Check every second, for as long as the app runs; outages are waited out. First, unless this
    process loaded the board itself, ask for a load that reconciles it with the database (a load
    keeps newer standings): the process this one replaces may have been killed between a commit
    and its board write, and only the database has that award."""
    asked = False
    while True:
        try:
            if not asked:
                if not board.loads:
                    await board.ask_reload()
                asked = True
            await ensure_loaded(board, rebuild)
        except ServiceUnavailable as exc:
            stop_if_cancelled()
            log.debug("board check postponed: %s", exc.message)
        except Exception:
            stop_if_cancelled()
            log.exception("board rebuild failed")
        await asyncio.sleep(CHECK_SECONDS)
