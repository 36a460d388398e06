"""Fan-out in one process: publishing is calling the handlers."""

from __future__ import annotations

from collections.abc import Callable

from ..records import AwardEvent, Notice
from . import AwardHandler, NoticesHandler, deliver


class LocalFanout:
    """One process: publishing is calling the handlers."""

    def __init__(self) -> None:
        self.handlers: list[AwardHandler] = []
        self.notice_handlers: list[NoticesHandler] = []
        self._shrink_callbacks: list[Callable[[], None]] = []

    def subscribe(self, handler: AwardHandler) -> None:
        """Add a handler."""
        self.handlers.append(handler)

    async def publish(self, event: AwardEvent) -> None:
        """Call every handler now."""
        deliver(self.handlers, event)

    def on_gap(self, callback: Callable[[], None]) -> None:
        """In one process nothing is ever missed."""

    def on_shrink(self, callback: Callable[[], None]) -> None:
        """Add a callback for `shrank`."""
        self._shrink_callbacks.append(callback)

    async def shrank(self) -> None:
        """Call the shrink callbacks now."""
        for callback in self._shrink_callbacks:
            callback()

    async def run(self) -> None:
        """Nothing to receive."""

    def on_notices(self, handler: NoticesHandler) -> None:
        """Add a notice handler."""
        self.notice_handlers.append(handler)

    async def tell(self, notices: list[Notice]) -> None:
        """Call every notice handler now."""
        deliver(self.notice_handlers, notices)
