"""A board's leaderboard channel over Server-Sent Events, for where a WebSocket cannot go."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import msgspec

from .errors import UnexpectedResponse
from .messages import LiveMessage, decode_message


async def read_events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[int | None, LiveMessage]]:
    """Each event of an open `text/event-stream` response: its id and its message (comments skipped)."""
    event_id: int | None = None
    data: list[str] = []
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield event_id, _decoded("\n".join(data))
            event_id, data = None, []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "id" and value.isdigit():
                event_id = int(value)


def _decoded(data: str) -> LiveMessage:
    """An event's message; UnexpectedResponse when it is none (something else answered)."""
    try:
        return decode_message(data)
    except msgspec.DecodeError:  # not JSON, or a known type with the wrong shape
        raise UnexpectedResponse(200, "UNEXPECTED_RESPONSE", f"not a live message: {data[:200]!r}") from None
