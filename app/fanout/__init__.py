"""Fan-out of award events and users' notices to every process's hub: directly in one process, or
over Redis."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

from ..records import AwardEvent, Notice

log = logging.getLogger(__name__)
T = TypeVar("T")

AwardHandler = Callable[[AwardEvent], None]
NoticesHandler = Callable[[list[Notice]], None]


class Fanout(Protocol):
    """Publish an event once; every subscribed handler, in every process, gets it."""

    def subscribe(self, handler: AwardHandler) -> None:
        """Deliver events to `handler` (called in the event loop, must not block)."""

    async def publish(self, event: AwardEvent) -> None:
        """Send an event to all subscribers."""

    def on_gap(self, callback: Callable[[], None]) -> None:
        """Call `callback` when events may have been missed (the channel was lost for a while)."""

    def on_shrink(self, callback: Callable[[], None]) -> None:
        """Call `callback` when a user left the boards (erased): what was shown may be shorter now."""

    async def shrank(self) -> None:
        """Tell every process, this one included, that a user left the boards."""

    def on_notices(self, handler: NoticesHandler) -> None:
        """Deliver kept notices to `handler` (called in the event loop, must not block)."""

    async def tell(self, notices: list[Notice]) -> None:
        """Send kept notices to every process's notice handlers."""

    async def run(self) -> None:
        """Receive events for as long as the app runs."""


def deliver(handlers: list[Callable[[T], None]], event: T) -> None:
    """Call each handler; one failing handler does not stop the others."""
    for handler in list(handlers):
        try:
            handler(event)
        except Exception:
            log.exception("fan-out handler failed")
