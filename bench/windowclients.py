"""Client processes whose connections each hold one board window (`around`, or the top 10 of the
`leaderboard` channel): every message applied in order, each state's arrival kept, and at the end
the latency of every award to every window it changed, from the replay's reference (bench/replay.py)."""

from __future__ import annotations

import asyncio
import math
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Any, Self

import msgspec

from .clients import READY_TIMEOUT, ClientSpec, close_all, open_clients, recv, updated_at
from .replay import State
from .stats import Histogram
from .wsproto import WsClient

BOARD_TYPES = (b'{"type":"ranks_update"', b'{"type":"leaderboard_update"')
SEQ = b'"seq":'
CACHE_LIMIT = 8192  # distinct message bodies decoded once per process (a wave's are all the same)


@dataclass(frozen=True)
class WindowSpec(ClientSpec):
    """ClientSpec whose every token is a user's: that user's own window."""

    users: list[str] = field(default_factory=list)  # the user of each token

    def share(self, k: int, processes: int) -> Self:
        return replace(super().share(k, processes), users=self.users[k::processes])


class _Row(msgspec.Struct):
    rank: int
    userId: str
    score: int


class _Data(msgspec.Struct):
    snapshot: bool = True  # a leaderboard_update always shows the whole top 10
    entries: list[_Row] | None = None  # ranks_update
    leaderboard: list[_Row] | None = None  # leaderboard_update


class _Message(msgspec.Struct):
    data: _Data


_decode = msgspec.json.Decoder(_Message).decode


class Held:
    """What one connection shows: rank -> (userId, score), and its board messages' seq."""

    __slots__ = ("index", "rows", "seq", "snapshot_first", "user")

    def __init__(self, index: int, user: str) -> None:
        self.index = index
        self.user = user
        self.rows: dict[int, tuple[str, int]] = {}
        self.seq: int | None = None  # of the last board message; None before the first
        self.snapshot_first: bool | None = None  # whether the first board message was a snapshot

    def state(self) -> State:
        return tuple((rank, *self.rows[rank]) for rank in sorted(self.rows))


class WindowReceiver:
    """Applies every board message of every connection of this process and logs (connection,
    state, arrival) of each one after the first (the answer to `subscribe`, not an update)."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users  # connection path -> user
        self.held: dict[WsClient, Held] = {}
        self.by_type: Counter[str] = Counter()
        self.seq_gaps = 0
        self.updated_at = Histogram()  # leaderboard_update: arrival - data.updatedAt, as `bench run`
        self.states: dict[State, int] = {}  # interned: state -> id
        self.who = array("i")
        self.state_ids = array("i")
        self.arrivals = array("d")
        self._bodies: dict[bytes, _Data] = {}

    def _held(self, client: WsClient) -> Held:
        held = self.held.get(client)
        if held is None:
            held = self.held[client] = Held(len(self.held), self.users[client.path])
        return held

    def _body(self, payload: bytes, end: int) -> _Data:
        # The rest after the seq is the same for every subscriber of one message: decoded once.
        key = payload[end:]
        data = self._bodies.get(key)
        if data is None:
            if len(self._bodies) >= CACHE_LIMIT:
                self._bodies.clear()
            data = self._bodies[key] = _decode(payload).data
        return data

    def on_text(self, client: WsClient, payload: bytes) -> None:
        now = time.time()
        if not payload.startswith(BOARD_TYPES):
            end = payload.find(b'"', 9)
            self.by_type[payload[9:end].decode(errors="replace")] += 1
            return
        at = payload.index(SEQ) + len(SEQ)
        end = at
        while payload[end] in b"0123456789":
            end += 1
        seq = int(payload[at:end])
        data = self._body(payload, end)
        held = self._held(client)
        first = held.seq is None
        if not first and seq != (held.seq or 0) + 1:
            self.seq_gaps += 1
        held.seq = seq
        if data.leaderboard is not None:
            self.by_type["leaderboard_update"] += 1
            rows = {r.rank: (r.userId, r.score) for r in data.leaderboard}
            # The same top: only the board's count changed (or a resync), no award to time.
            moved, held.rows = rows != held.rows, rows
            stamped = updated_at(payload) if moved and not first else None
            if stamped is not None:
                self.updated_at.record(1000 * (now - stamped))
        else:
            self.by_type["ranks_update"] += 1
            if data.snapshot:
                held.rows = {}
            held.rows.update((r.rank, (r.userId, r.score)) for r in data.entries or ())
        if first:
            held.snapshot_first = data.snapshot
            self.by_type["snapshot at subscribe"] += 1
            return
        state = held.state()
        self.who.append(held.index)
        self.state_ids.append(self.states.setdefault(state, len(self.states)))
        self.arrivals.append(now)


@dataclass
class Finish:
    """What the parent sends after the load: every connection's expected final state, and the
    replay's reference for the latencies."""

    expected: dict[str, State | None]  # user -> the state GET answered at the end (None: not read)
    timeout: float  # seconds to wait for every connection to show it
    first_seen: dict[State, int]  # a state -> the award (1-based, in commit order) that made it; 0: before the load
    commits: list[float]  # award k's commit time (epoch seconds) at index k; index 0 unused
    changed: dict[str, list[int]]  # user -> the awards that changed that user's window, ascending
    shared: list[int] | None = None  # the leaderboard channel: the awards that changed the top 10, for all


def latencies(receiver: WindowReceiver, finish: Finish) -> dict[str, Any]:
    """Per message, from the newest award it shows; per (award, window it changed), from that
    award to the first message showing it or a later state (and each award's slowest). Arrival -
    commit, in ms."""
    states: list[State] = [()] * len(receiver.states)
    for state, sid in receiver.states.items():
        states[sid] = state
    made = [finish.first_seen.get(state) for state in states]
    newest, every = Histogram(), Histogram()
    slowest: dict[int, float] = {}  # award -> its slowest window here
    unmatched = not_shown = 0
    shown: dict[int, list[tuple[int, float]]] = {}  # connection -> (award, arrival) of each message
    for who, sid, at in zip(receiver.who, receiver.state_ids, receiver.arrivals, strict=True):
        k = made[sid]
        if k is None:  # a state the replayed board never passed through
            unmatched += 1
            continue
        if k > 0:
            newest.record(1000 * (at - finish.commits[k]))
        shown.setdefault(who, []).append((k, at))
    for held in receiver.held.values():
        changed = finish.shared if finish.shared is not None else finish.changed.get(held.user, [])
        i = 0
        for k, at in shown.get(held.index, []):
            while i < len(changed) and changed[i] <= k:
                ms = 1000 * (at - finish.commits[changed[i]])
                every.record(ms)
                slowest[changed[i]] = max(ms, slowest.get(changed[i], 0.0))
                i += 1
        not_shown += len(changed) - i
    return {
        "newest": newest.to_wire(),
        "every": every.to_wire(),
        "slowest": slowest,
        "unmatched_states": unmatched,
        "changes_never_shown": not_shown,
    }


def _converged(receiver: WindowReceiver, expected: dict[str, State | None]) -> bool:
    return all(held.state() == expected.get(held.user) for held in receiver.held.values())


async def _child(conn: Connection, spec: WindowSpec) -> None:
    paths = {f"{spec.path}?token={token}": user for token, user in zip(spec.tokens, spec.users, strict=True)}
    receiver = WindowReceiver(paths)
    clients, errors = await open_clients(spec, receiver.on_text)
    deadline = time.monotonic() + (READY_TIMEOUT if spec.snapshot else 0.0)
    # Polled: the state is set by protocol callbacks of many connections, not by one event.
    while time.monotonic() < deadline and any(  # noqa: ASYNC110
        c not in receiver.held and not c.closed.done() for c in clients
    ):
        await asyncio.sleep(0.02)
    conn.send(("ready", {"connected": len(clients), "connect_errors": dict(errors)}))
    try:
        command, finish = await recv(conn)
    except EOFError:  # the parent is gone: close and leave
        command, finish = "gone", None
    result: dict[str, Any] = {}
    if command == "finish":
        deadline = time.monotonic() + finish.timeout
        while not _converged(receiver, finish.expected) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        result = _result(receiver, clients, finish)
    await close_all(clients)
    if command == "finish":
        result |= {"connected": len(clients), "connect_errors": dict(errors)}
        conn.send(("result", result))


def _result(receiver: WindowReceiver, clients: list[WsClient], finish: Finish) -> dict[str, Any]:
    matching = mismatching = missing = 0
    sample = None
    for held in receiver.held.values():
        expected = finish.expected.get(held.user)
        if held.state() == expected:
            matching += 1
        else:
            mismatching += 1
            sample = sample or {"user": held.user, "shows": held.state(), "expected": expected}
    missing = sum(1 for c in clients if c not in receiver.held)
    arrivals = receiver.arrivals
    return {
        "closed_early": dict(Counter(str(c.close_code) for c in clients if c.closed.done())),
        "by_type": dict(receiver.by_type),
        "updates": len(arrivals),
        "first_update": min(arrivals) if arrivals else math.nan,
        "last_update": max(arrivals) if arrivals else math.nan,
        "snapshot_first": sum(1 for h in receiver.held.values() if h.snapshot_first),
        "seq_gaps": receiver.seq_gaps,
        "updated_at": receiver.updated_at.to_wire(),
        "final": {"matching": matching, "mismatching": mismatching, "no_snapshot": missing, "sample": sample},
        **latencies(receiver, finish),
    }


def window_client_main(conn: Connection, spec: WindowSpec) -> None:
    """Entry point of a window client process."""
    import uvloop

    uvloop.run(_child(conn, spec))
    conn.close()


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary of every client process's result."""
    by_type: Counter[str] = Counter()
    closed: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    final: Counter[str] = Counter()
    hists = {name: Histogram() for name in ("newest", "every", "updated_at")}
    counts: Counter[str] = Counter()
    slowest: dict[int, float] = {}
    sample = None
    for r in results:
        for k, ms in r["slowest"].items():
            slowest[k] = max(ms, slowest.get(k, 0.0))
        by_type.update(r["by_type"])
        closed.update(r["closed_early"])
        errors.update(r["connect_errors"])
        for name, hist in hists.items():
            hist.merge(Histogram.from_wire(r[name]))
        for key in ("connected", "updates", "snapshot_first", "seq_gaps", "unmatched_states", "changes_never_shown"):
            counts[key] += r[key]
        for key in ("matching", "mismatching", "no_snapshot"):
            final[key] += r["final"][key]
        sample = sample or r["final"]["sample"]
    firsts = [r["first_update"] for r in results if not math.isnan(r["first_update"])]
    lasts = [r["last_update"] for r in results if not math.isnan(r["last_update"])]
    return {
        **{key: counts[key] for key in sorted(counts)},
        "connect_errors": dict(errors),
        "closed_early": dict(closed),
        "messages_by_type": dict(by_type),
        "first_update": min(firsts) if firsts else None,
        "last_update": max(lasts) if lasts else None,
        "final_states": {**final, "sample_mismatch": sample},
        "latency": hists,
        "slowest": slowest,
    }
