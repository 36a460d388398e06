"""Serving until SIGTERM or SIGINT, then the graceful drain: the process exits at most
`server.drain_seconds` after the signal.

On the signal, aiohttp's shutdown runs these steps in order:
1. the listening socket closes: no new connection reaches this process (with `--reuse-port` or
   `--workers`, the kernel hands new ones to the other processes on the port);
2. idle keep-alive connections close; a connection with a request in flight closes after its answer
   (aiohttp reads nothing more from then on: a request whose body is still arriving is not in
   flight yet, gets no answer, and its client sends it again);
3. `on_shutdown` (app/__init__.py) closes every WebSocket with 1012 "service restart": clients
   reconnect at once, with jitter, and land on another process;
4. in-flight requests and the WebSocket close handshakes get `handler_seconds(drain_seconds)`;
   whatever still runs then is cancelled;
5. the cleanup contexts close Redis and the storage.
A watchdog ends the process at the deadline should anything still hold it (a storage that does
not answer): like a crash, that costs no acknowledged award, since a 200 is sent after the commit
and an update that got no answer can be retried with the same token. A second signal during the
drain changes nothing: the deadline stands.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger(__name__)

CLEANUP_SECONDS = 1.0  # of the deadline, kept for closing Redis and the storage after the handlers
EXIT_CUT_SHORT = 3  # the exit status when the watchdog ends the process
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def handler_seconds(drain_seconds: float) -> float:
    """How long in-flight requests and WebSocket close handshakes may take once the drain begins."""
    return max(drain_seconds - CLEANUP_SECONDS, CLEANUP_SECONDS)


class Watchdog:
    """Ends the process `seconds` after `start`, whatever is still running: the drain's deadline.
    A daemon thread, so it fires even while the event loop or the interpreter's exit is stuck."""

    def __init__(self, seconds: float, *, end: Callable[[int], object] = os._exit) -> None:
        self.seconds = seconds
        self._end = end
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        """Start counting (once)."""
        if self._timer is None:
            self._timer = threading.Timer(self.seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def cancel(self) -> None:
        """Stop counting (for a caller that outlives the drain, such as a test)."""
        if self._timer is not None:
            self._timer.cancel()

    def _fire(self) -> None:
        log.error("the drain took longer than %.1f s: exiting now, cutting off what is left", self.seconds)
        self._end(EXIT_CUT_SHORT)


class ListenError(Exception):
    """The address cannot be listened on; its message is one line saying which and what to do."""


MAIN_PORT = "choose another port with --port or SCOREBOARD_PORT (or another address with --host)"
METRICS_PORT = "choose another with metrics.port (or metrics.host) in the configuration"


def listen_error(host: str, port: int, exc: OSError, *, remedy: str = MAIN_PORT) -> ListenError:
    """The one line for a bind that failed, saying how to choose another address."""
    reason = "the port is in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc)).lower()
    return ListenError(f"cannot listen on {host}:{port}: {reason}; {remedy}")


def check_address(host: str, port: int, *, reuse_port: bool, remedy: str = MAIN_PORT) -> None:
    """Refuse an address this process could not listen on (ListenError) before anything starts: a bind
    of each address the server would listen on, with the options aiohttp's server sets, undone at once."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise listen_error(host, port, exc, remedy=remedy) from None
    for family, kind, proto, _, address in found:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise listen_error(host, port, exc, remedy=remedy) from None


def settle_heap() -> None:
    """Take what start-up built out of the collector's way: it lives as long as the process, and a
    full collection walked all of it (~40 ms a time here, several times a minute under awards).
    Young collections run at YOUNG_COLLECTION_AT new objects."""
    gc.collect()  # garbage is not frozen with the rest
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_AT, *gc.get_threshold()[1:])


# New container objects (net of those freed) that start a young collection; Python's 700 started
# one every few requests under awards, ~0.4 ms each: 750-1,100 in a bench run, against 26-27 with
# 7,000 from the process's start. What requests leave in cycles waits a little longer: a few MB at most.
YOUNG_COLLECTION_AT = 7000


def serve(
    app: web.Application,
    *,
    host: str,
    port: int,
    reuse_port: bool,
    drain_seconds: float,
    announce: Callable[[str], None],
) -> None:
    """Serve `app` until SIGTERM or SIGINT, then drain it within `drain_seconds` (see above)."""
    asyncio.run(
        serve_until_stopped(
            app, host=host, port=port, reuse_port=reuse_port, drain_seconds=drain_seconds, announce=announce
        )
    )


async def serve_until_stopped(
    app: web.Application,
    *,
    host: str,
    port: int,
    reuse_port: bool,
    drain_seconds: float,
    announce: Callable[[str], None],
    watchdog: Callable[[float], Watchdog] = Watchdog,
) -> None:
    """`serve` on the running loop: the stop signals are this coroutine's until it returns."""
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[signal.Signals] = loop.create_future()

    def on_signal(signum: signal.Signals) -> None:
        if stopped.done():
            log.warning("%s during the drain: ignored, the deadline stands", signum.name)
        else:
            stopped.set_result(signum)

    # Installed before the start-up, which may take seconds (Redis, the board's load): a signal
    # meanwhile is kept and acted on once the app is up, never lost or raised mid-start.
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        # No access log: the app logs one JSON line per request itself, without query strings.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=handler_seconds(drain_seconds))
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, reuse_port=reuse_port)
            try:
                await site.start()
            except OSError as exc:  # taken since check_address looked
                raise listen_error(host, port, exc) from None
            settle_heap()
            announce(f"======== Running on {site.name} ========\n(Press CTRL+C to quit)")
            received = await stopped
            watchdog(drain_seconds).start()  # never cancelled: it also covers the interpreter's exit
            log.info("%s: draining, exiting within %.1f s", received.name, drain_seconds)
        finally:
            began = time.monotonic()
            await runner.cleanup()
        log.info("drained in %.2f s", time.monotonic() - began)
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
