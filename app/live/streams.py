"""Server-Sent Events: a board channel for clients that cannot hold a WebSocket. A stream is a
connection of the registry like a socket (the same writes that never wait, the same slow-client
rule, the same drain), written as `text/event-stream` events in HTTP chunks."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .connections import Connection, Connections
from .messages import Sequenced

HEARTBEAT = b": keepalive\n\n"  # a comment: keeps proxies from timing the stream out, ignored by clients


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk (the stream's body is chunked: its length is not known)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class StreamConnection(Connection):
    """One event stream. It ends (`ended`) when the registry lets it go: dropped as too slow,
    closed by a drain, or found gone by a keepalive sweep."""

    __slots__ = ("ended",)

    def __init__(self, registry: Connections, transport: asyncio.BaseTransport | None) -> None:
        super().__init__(registry, None, transport)
        self.ended = asyncio.Event()

    @property
    def closed(self) -> bool:
        """The stream ended or its socket is closing."""
        return self.ended.is_set() or self.transport is None or self.transport.is_closing()

    def send_sequenced(self, message: Sequenced, seq: int) -> bool:
        """One event: `id` the seq, `event` the message type, `data` the whole message."""
        event = b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, message.kind.encode(), message.payload(seq))
        return self.send_frame(chunk(event))

    async def close(self, code: int, reason: str) -> None:
        """Nothing to say on an event stream: its handler ends the response when `ended` is set."""

    def beat(self) -> bool:
        """A heartbeat comment; False once the client has gone (the sweep then lets it go)."""
        if self.transport is None or self.transport.is_closing():
            return False
        self.send_frame(chunk(HEARTBEAT))
        return True

    def forget(self) -> None:
        """The registry let the stream go: its handler ends the response."""
        super().forget()
        self.ended.set()


async def start(response: web.StreamResponse, request: web.Request) -> None:
    """Send the stream's headers (and a first comment, so clients see it open at once)."""
    await response.prepare(request)
    await response.write(b": connected\n\n")
