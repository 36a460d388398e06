"""Fan-out in one process: publishing is calling the handlers."""

from __future__ import annotations

from collections.abc import Callable

from ..records import AwardEvent
from . import AwardHandler, deliver


class LocalFanout:
    """One process: publishing is calling the handlers."""

    def __init__(self) -> None:
        self.handlers: list[AwardHandler] = []

    def subscribe(self, handler: AwardHandler) -> None:
        """Add a handler."""
        self.handlers.append(handler)

    async def publish(self, event: AwardEvent) -> None:
        """Call every handler now."""
        deliver(self.handlers, event)

    def on_gap(self, callback: Callable[[], None]) -> None:
        """In one process nothing is ever missed."""

    async def run(self) -> None:
        """Nothing to receive."""
