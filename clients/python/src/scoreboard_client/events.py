"""A board's leaderboard channel over Server-Sent Events, for where a WebSocket cannot go."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

from .messages import LiveMessage, decode_message


async def read_events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[int | None, LiveMessage]]:
    """Each event of an open `text/event-stream` response: its id and its message (comments skipped)."""
    event_id: int | None = None
    data: list[str] = []
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield event_id, decode_message("\n".join(data))
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
