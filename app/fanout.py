"""Fan-out of award events to every process's hub: directly in one process, or over Redis."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from .events import AwardEvent

log = logging.getLogger(__name__)

AwardHandler = Callable[[AwardEvent], None]


class Fanout(Protocol):
    """Publish an event once; every subscribed handler, in every process, gets it."""

    def subscribe(self, handler: AwardHandler) -> None:
        """Deliver events to `handler` (called in the event loop, must not block)."""

    async def publish(self, event: AwardEvent) -> None:
        """Send an event to all subscribers."""

    def on_gap(self, callback: Callable[[], None]) -> None:
        """Call `callback` when events may have been missed (the channel was lost for a while)."""

    async def run(self) -> None:
        """Receive events for as long as the app runs."""


def deliver(handlers: list[AwardHandler], event: AwardEvent) -> None:
    """Call each handler; one failing handler does not stop the others."""
    for handler in list(handlers):
        try:
            handler(event)
        except Exception:
            log.exception("award handler failed")


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
