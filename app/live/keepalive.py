"""WebSocket heartbeats for every connection from one task: a peer that stops answering is cut off.

aiohttp's own heartbeat keeps a timer per socket (about 0.7 KiB each at 19,000 connections);
one sweep over all connections every half interval does the same job for a flag per socket.
"""

from __future__ import annotations

import asyncio
import logging

from .connections import Connection, Connections

log = logging.getLogger(__name__)

SWEEP_CHUNK = 1024  # connections visited between yields, so a sweep never holds up awards


class Keepalive:
    """Pings each connection after half to one `interval` without a frame from it, and cuts it
    when nothing (no PONG) has come half an interval later: silent peers go after 1 to 1.5
    intervals, as with aiohttp's heartbeat."""

    def __init__(self, registry: Connections, interval: float) -> None:
        self.registry = registry
        self.interval = interval

    def cut(self, conn: Connection) -> None:
        """Drop a silent peer at once: no close handshake with a peer that does not answer."""
        log.info("websocket peer silent: connection %s cut", conn.id)
        self.registry.disconnect(conn)
        conn.abort()

    async def sweep(self) -> None:
        """Visit every connection once: ping the quiet ones, cut those that did not answer."""
        for i, conn in enumerate(list(self.registry.connections)):
            if i % SWEEP_CHUNK == SWEEP_CHUNK - 1:
                await asyncio.sleep(0)
            if conn not in self.registry.connections:  # closed meanwhile
                continue
            if not conn.beat():
                self.cut(conn)

    async def run(self) -> None:
        """Sweep every half interval until cancelled."""
        while True:
            await asyncio.sleep(self.interval / 2)
            try:
                await self.sweep()
            except Exception:  # one bad connection must not end the heartbeats of all
                log.exception("keepalive sweep failed")
