"""Fan-out through Redis Pub/Sub: an award made, or a notice kept, in any process reaches every
process's hub."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgspec
import redis.asyncio as aioredis

from ..records import AwardEvent, Notice, Noticed
from ..redis_client import OUTAGES, Keys, TurnPipeline, unavailable_on_outage
from ..tasks import stop_if_cancelled
from . import AwardHandler, NoticesHandler, deliver

log = logging.getLogger(__name__)

RETRY_SECONDS = 0.5


class Reloaded(msgspec.Struct, frozen=True, tag="reloaded"):
    """The board was loaded from the database: it may hold awards no event announced."""


class Shrunk(msgspec.Struct, frozen=True, tag="shrunk"):
    """A user left the boards (erased): every process shows its viewers the boards again, shorter."""


class RedisFanout:
    """PUBLISH on award; each process listens on the channel and hands events to its hub."""

    def __init__(self, client: aioredis.Redis, keys: Keys, trips: TurnPipeline | None = None) -> None:
        self.client = client
        self.keys = keys
        self.trips = trips or TurnPipeline(client)
        self.handlers: list[AwardHandler] = []
        self.notice_handlers: list[NoticesHandler] = []
        self._gap_callbacks: list[Callable[[], None]] = []
        self._shrink_callbacks: list[Callable[[], None]] = []
        self._listening = asyncio.Event()  # subscribed to the channel now
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(AwardEvent | Reloaded | Noticed | Shrunk)

    async def reloaded(self) -> None:
        """Tell every process the board was loaded: each sends its viewers the board again. This
        one at once, without waiting for its own notice."""
        self._missed()
        with unavailable_on_outage():
            await self.client.publish(self.keys.channel, self._encoder.encode(Reloaded()))

    def on_shrink(self, callback: Callable[[], None]) -> None:
        """Add a callback for a user who left the boards, in any process."""
        self._shrink_callbacks.append(callback)

    async def shrank(self) -> None:
        """Tell every process, this one included, that a user left the boards."""
        with unavailable_on_outage():
            await self.client.publish(self.keys.channel, self._encoder.encode(Shrunk()))

    def subscribe(self, handler: AwardHandler) -> None:
        """Add a handler for events from every process."""
        self.handlers.append(handler)

    def on_gap(self, callback: Callable[[], None]) -> None:
        """Call `callback` after resubscribing: events published meanwhile were missed."""
        self._gap_callbacks.append(callback)

    async def publish(self, event: AwardEvent) -> None:
        """Send an event to every process, this one included."""
        with unavailable_on_outage():
            message = self._encoder.encode(event)
            await self.trips.call(lambda pipe: pipe.publish(self.keys.channel, message))

    def on_notices(self, handler: NoticesHandler) -> None:
        """Add a handler for notices kept by every process."""
        self.notice_handlers.append(handler)

    async def tell(self, notices: list[Notice]) -> None:
        """Send kept notices to every process, this one included."""
        with unavailable_on_outage():
            message = self._encoder.encode(Noticed(notices=notices))
            await self.trips.call(lambda pipe: pipe.publish(self.keys.channel, message))

    async def listening(self) -> None:
        """Wait until `run` is subscribed: an award published before that reaches no viewer of
        this process."""
        await self._listening.wait()

    async def run(self) -> None:
        """Listen for as long as the app runs; resubscribe after an outage."""
        first = True
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.keys.channel)
                stop_if_cancelled()  # a cancellation the subscribe's write dropped (see tasks.pause)
                self._listening.set()
                if not first:
                    self._missed()
                first = False
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._handle(message["data"])
            except OUTAGES:
                self._listening.clear()
                stop_if_cancelled()
                log.warning("award channel lost; resubscribing")
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _handle(self, data: bytes) -> None:
        try:
            event = self._decoder.decode(data)
        except msgspec.DecodeError:
            log.warning("undecodable award event ignored")
            return
        if isinstance(event, Reloaded):
            self._missed()
        elif isinstance(event, Noticed):
            deliver(self.notice_handlers, event.notices)
        elif isinstance(event, Shrunk):
            for callback in self._shrink_callbacks:
                callback()
        else:
            deliver(self.handlers, event)

    def _missed(self) -> None:
        for callback in self._gap_callbacks:
            callback()
