"""Server-Sent Events: a board channel for clients that cannot hold a WebSocket. A stream is a
connection of the registry like a socket (the same writes that never wait, the same slow-client
rule, the same drain), written as `text/event-stream` events in HTTP chunks."""

from __future__ import annotations

import asyncio

from aiohttp import hdrs, web

from .connections import Connection, Connections
from .messages import Sequenced

HEARTBEAT = b": keepalive\n\n"  # a comment: keeps proxies from timing the stream out, ignored by clients


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk (the stream's body is chunked: its length is not known)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def as_is(data: bytes) -> bytes:
    """The bytes as they are: an HTTP/1.0 body has no chunks, its end is the connection's."""
    return data


class StreamConnection(Connection):
    """One event stream. It ends (`ended`) when the registry lets it go: dropped as too slow,
    closed by a drain, or found gone by a keepalive sweep."""

    __slots__ = ("ended", "framed")

    def __init__(self, registry: Connections, transport: asyncio.BaseTransport | None, *, chunked: bool) -> None:
        super().__init__(registry, None, transport)
        self.ended = asyncio.Event()
        self.framed = chunk if chunked else as_is  # as the response's headers said (HTTP/1.1 or 1.0)

    @property
    def closed(self) -> bool:
        """The stream ended or its socket is closing."""
        return self.ended.is_set() or self.transport is None or self.transport.is_closing()

    def send_sequenced(self, message: Sequenced, seq: int) -> bool:
        """One event: `id` the seq, `event` the message type, `data` the whole message."""
        event = b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, message.kind.encode(), message.payload(seq))
        return self.send_frame(self.framed(event))

    async def close(self, code: int, reason: str) -> None:
        """Nothing to say on an event stream: its handler ends the response when `ended` is set."""

    def beat(self) -> bool:
        """A heartbeat comment; False once the client has gone (the sweep then lets it go)."""
        if self.transport is None or self.transport.is_closing():
            return False
        self.send_frame(self.framed(HEARTBEAT))
        return True

    def forget(self) -> None:
        """The registry let the stream go: its handler ends the response."""
        super().forget()
        self.ended.set()


async def start(response: web.StreamResponse, request: web.Request) -> bool:
    """Send the stream's headers (and a first comment, so clients see it open at once); whether
    its body is chunked (HTTP/1.1) or ends with the connection (HTTP/1.0)."""
    await response.prepare(request)
    await response.write(b": connected\n\n")
    return response.headers.get(hdrs.TRANSFER_ENCODING) == "chunked"  # as aiohttp chose for the version
