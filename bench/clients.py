"""Subscribed WebSocket clients spread over processes: connect, receive, measure, report."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any, Self

import msgspec

from .stats import Histogram
from .wsproto import WsClient, connect

SUBSCRIBE = b'{"type":"subscribe","channel":"leaderboard"}'
LIVE_TYPE = b'"type":"leaderboard_update"'
UPDATED_AT = b'"updatedAt":"'
CONNECT_CONCURRENCY = 64
CONNECT_ATTEMPTS = 3
READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class ClientSpec:
    """What one client process opens: one connection per token (None = anonymous)."""

    host: str
    port: int
    path: str
    tokens: list[str | None]
    snapshot: bool  # the server answers `subscribe` with a snapshot, which is not a live update
    # The source address: one address has ~28k ephemeral ports towards one server port, so
    # each client process connects from its own loopback address (127.0.0.2, 127.0.0.3, ...).
    source: str | None = None
    subscribe: bytes = SUBSCRIBE  # sent on every connection once it is open

    def share(self, k: int, processes: int) -> Self:
        """What client process k of `processes` opens: every processes-th token from the k-th."""
        source = f"127.0.0.{2 + k}" if self.host == "127.0.0.1" else None
        return replace(self, tokens=self.tokens[k::processes], source=source)


class _Board(msgspec.Struct):
    rank: int
    userId: str
    score: int


class _Data(msgspec.Struct):
    leaderboard: list[_Board]


class _Update(msgspec.Struct):
    data: _Data


_decode_update = msgspec.json.Decoder(_Update).decode


def board_rows(payload: bytes) -> list[tuple[int, str, int]]:
    """(rank, userId, score) of a leaderboard_update."""
    return [(e.rank, e.userId, e.score) for e in _decode_update(payload).data.leaderboard]


@functools.lru_cache(maxsize=4096)
def stamp(iso: bytes) -> float:
    """Epoch seconds of an ISO 8601 `updatedAt` (every client of a wave carries the same: parsed once)."""
    return datetime.fromisoformat(iso.decode()).timestamp()


def updated_at(payload: bytes) -> float | None:
    """Epoch seconds of a leaderboard_update's `data.updatedAt`, found without decoding the message."""
    at = payload.rfind(UPDATED_AT)
    if at < 0:
        return None
    start = at + len(UPDATED_AT)
    return stamp(payload[start : payload.index(b'"', start)])


class Receiver:
    """Counts and timestamps what every client of this process receives."""

    def __init__(self, snapshot: bool) -> None:
        self.snapshot = snapshot
        self.latency = Histogram()
        self.by_type: Counter[str] = Counter()
        self.first_live = 0.0
        self.last_live = 0.0

    def on_text(self, client: WsClient, payload: bytes) -> None:
        now = time.time()
        if LIVE_TYPE not in payload[:40]:
            end = payload.find(b'"', 9)
            self.by_type[payload[9:end].decode(errors="replace")] += 1
            return
        previous, client.last_board = client.last_board, payload
        if previous is None and self.snapshot:
            self.by_type["leaderboard_snapshot"] += 1
            return
        self.by_type["leaderboard_update"] += 1
        client.live_updates += 1
        stamped = updated_at(payload)
        # The top's newest award as before: only the board's count changed (or a resync), no award to time.
        if stamped is not None and (previous is None or stamped != updated_at(previous)):
            self.latency.record(1000 * (now - stamped))
        if not self.first_live:
            self.first_live = now
        self.last_live = now


OnText = Callable[[WsClient, bytes], None]


async def open_clients(spec: ClientSpec, on_text: OnText) -> tuple[list[WsClient], Counter[str]]:
    """One connection per token of `spec`, each sent `spec.subscribe` (if any); those open and the errors."""
    errors: Counter[str] = Counter()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(token: str | None) -> WsClient | None:
        path = spec.path if token is None else f"{spec.path}?token={token}"
        async with gate:
            for attempt in range(CONNECT_ATTEMPTS):
                try:
                    client = await asyncio.wait_for(
                        connect(spec.host, spec.port, path, on_text, source=spec.source), 10
                    )
                except (OSError, TimeoutError) as exc:
                    if attempt == CONNECT_ATTEMPTS - 1:
                        errors[type(exc).__name__ + ": " + str(exc)[:80]] += 1
                        return None
                    await asyncio.sleep(0.1 * (attempt + 1))
                else:
                    if spec.subscribe:
                        client.send_text(spec.subscribe)
                    return client
        return None

    opened = await asyncio.gather(*(one(token) for token in spec.tokens))
    return [c for c in opened if c is not None], errors


async def close_all(clients: list[WsClient]) -> None:
    """Close every connection (the server closes the TCP side), cutting those that take over 5 s."""
    for c in clients:
        c.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(c.closed for c in clients)), 5)
    for c in clients:
        c.abort()
    await asyncio.sleep(0)  # let aborted transports run connection_lost


async def recv(conn: Connection) -> Any:
    """The next message from the other end, without blocking the loop until it starts."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(conn.fileno(), readable)
    try:
        await ready
    finally:
        loop.remove_reader(conn.fileno())
        # uvloop left the pipe non-blocking: a message longer than the pipe's buffer would fail
        # half read (EAGAIN), and so would a long `send` later.
        os.set_blocking(conn.fileno(), True)
    return conn.recv()


def _converged(clients: list[WsClient], board: list[tuple[int, str, int]] | None, count: int | None) -> bool:
    if board is not None:
        decoded: dict[bytes, list[tuple[int, str, int]]] = {}
        for c in clients:
            if c.last_board is None:
                return False
            if c.last_board not in decoded:
                decoded[c.last_board] = board_rows(c.last_board)
            if decoded[c.last_board] != board:
                return False
    return count is None or all(c.live_updates >= count for c in clients)


async def _child(conn: Connection, spec: ClientSpec) -> None:
    receiver = Receiver(spec.snapshot)
    clients, errors = await open_clients(spec, receiver.on_text)
    if spec.snapshot:  # ready once every subscription is live
        deadline = time.monotonic() + READY_TIMEOUT
        # Polled: the state is set by protocol callbacks of many connections, not by one event.
        while time.monotonic() < deadline and any(c.last_board is None and not c.closed.done() for c in clients):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    conn.send(("ready", {"connected": len(clients), "connect_errors": dict(errors)}))
    try:
        command, args = await recv(conn)
    except EOFError:  # the parent is gone: close and leave
        command, args = "finish", {"board": None, "count": None, "timeout": 0}
    board = [tuple(row) for row in args["board"]] if args["board"] is not None else None
    started = time.monotonic()
    deadline = started + args["timeout"]
    while not _converged(clients, board, args["count"]) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    converged = _converged(clients, board, args["count"])
    closed_early = Counter(str(c.close_code) for c in clients if c.closed.done())
    matching = mismatch = missing = 0
    sample: list[tuple[int, str, int]] | None = None
    for c in clients:
        if c.last_board is None:
            missing += 1
        elif board is not None and board_rows(c.last_board) != board:
            mismatch += 1
            sample = board_rows(c.last_board)
        else:
            matching += 1
    result = {
        "connected": len(clients),
        "connect_errors": dict(errors),
        "closed_early": dict(closed_early),
        "by_type": dict(receiver.by_type),
        "live_updates": sum(c.live_updates for c in clients),
        "min_live_updates": min((c.live_updates for c in clients), default=0),
        "latency": receiver.latency.to_wire(),
        "first_live": receiver.first_live,
        "last_live": receiver.last_live,
        "converged": converged,
        "converge_seconds": time.monotonic() - started,
        "boards": {"matching": matching, "mismatching": mismatch, "missing": missing, "sample_mismatch": sample},
    }
    await close_all(clients)
    if command == "finish":
        conn.send(("result", result))


def client_main(conn: Connection, spec: ClientSpec) -> None:
    """Entry point of a client process."""
    import uvloop

    uvloop.run(_child(conn, spec))
    conn.close()


ClientMain = Callable[[Connection, Any], None]


class ClientPool:
    """K client processes sharing N connections; always joined or terminated on exit. `target`
    runs in each (with its share of `spec`): it answers ("ready", {connected, connect_errors}),
    then one reply per message `exchange` sends."""

    def __init__(self, spec: ClientSpec, processes: int, target: ClientMain = client_main) -> None:
        self.spec = spec
        self.target = target
        self.processes = max(1, min(processes, len(spec.tokens) or 1))
        self._procs: list[multiprocessing.process.BaseProcess] = []
        self._pipes: list[Connection] = []

    async def __aenter__(self) -> ClientPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    async def start(self) -> dict[str, Any]:
        """Spawn the processes and wait until every connection is open and subscribed."""
        ctx = multiprocessing.get_context("spawn")  # no copy of the parent's event loop or sockets
        for k in range(self.processes):
            share = self.spec.share(k, self.processes)
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=self.target, args=(child, share), name=f"bench-clients-{k}", daemon=True)
            proc.start()
            child.close()
            self._procs.append(proc)
            self._pipes.append(parent)
        replies = await asyncio.wait_for(asyncio.gather(*(recv(p) for p in self._pipes)), READY_TIMEOUT + 30)
        errors: Counter[str] = Counter()
        for _, ready in replies:
            errors.update(ready["connect_errors"])
        return {"connected": sum(r["connected"] for _, r in replies), "connect_errors": dict(errors)}

    async def finish(
        self, *, board: list[tuple[int, str, int]] | None = None, count: int | None = None, within: float = 5.0
    ) -> dict[str, Any]:
        """Wait until every client shows `board` (or got `count` live updates), then close and merge."""
        args = {"board": board, "count": count, "timeout": within}
        replies = await self.exchange([("finish", args)] * len(self._pipes), within + 30)
        return merge([r for _, r in replies])

    async def exchange(self, messages: list[Any], within: float) -> list[Any]:
        """Send each client process its message (in start order); their replies."""
        for pipe, message in zip(self._pipes, messages, strict=True):
            pipe.send(message)
        replies: list[Any] = await asyncio.wait_for(asyncio.gather(*(recv(p) for p in self._pipes)), within)
        return replies

    async def close(self) -> None:
        for pipe in self._pipes:
            pipe.close()
        deadline = time.monotonic() + 10
        for proc in self._procs:
            while proc.is_alive() and time.monotonic() < deadline:  # noqa: ASYNC110 - a process, not a task
                await asyncio.sleep(0.05)
            if proc.is_alive():
                proc.terminate()
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
            proc.close()
        self._procs.clear()
        self._pipes.clear()


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary of every client process's result."""
    latency = Histogram()
    by_type: Counter[str] = Counter()
    closed: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    boards: Counter[str] = Counter()
    sample = None
    for r in results:
        latency.merge(Histogram.from_wire(r["latency"]))
        by_type.update(r["by_type"])
        closed.update(r["closed_early"])
        errors.update(r["connect_errors"])
        for key in ("matching", "mismatching", "missing"):
            boards[key] += r["boards"][key]
        sample = sample or r["boards"]["sample_mismatch"]
    firsts = [r["first_live"] for r in results if r["first_live"]]
    lasts = [r["last_live"] for r in results if r["last_live"]]
    return {
        "connected": sum(r["connected"] for r in results),
        "connect_errors": dict(errors),
        "closed_early": dict(closed),
        "by_type": dict(by_type),
        "live_updates": sum(r["live_updates"] for r in results),
        "min_live_updates_per_client": min((r["min_live_updates"] for r in results), default=0),
        "latency": latency,
        "first_live": min(firsts) if firsts else None,
        "last_live": max(lasts) if lasts else None,
        "converged": all(r["converged"] for r in results),
        "converge_seconds": round(max((r["converge_seconds"] for r in results), default=0.0), 3),
        "boards": {**boards, "sample_mismatch": sample},
    }
