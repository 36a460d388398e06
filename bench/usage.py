"""CPU and RSS of a server process (and its worker children), read from /proc each second; the machine."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

_TICKS = os.sysconf("SC_CLK_TCK")


def by_name(comm: str) -> int | None:
    """The pid of a running process named `comm` (e.g. redis-server), to read its usage only; of a
    server whose children have its name (PostgreSQL's backends), the parent of them all. Process
    ids wrap around: a backend may have a lower id than the postmaster that forked it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if (entry / "comm").read_text().strip() == comm:
                    parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    return eldest(parents)


def eldest(parents: Mapping[int, int]) -> int | None:
    """Of some processes (pid -> its parent's pid), one whose parent is not among them."""
    return next((pid for pid, parent in parents.items() if parent not in parents), None)


def _tree(pid: int, tree: bool = True) -> list[int]:
    """The process and its descendants (the supervisor of `--workers` and its workers)."""
    if not tree:
        return [pid]
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            queue.extend(int(child) for child in children)
    return pids


def cpu_seconds(pid: int, tree: bool = True) -> float:
    """User + system CPU time of the process (tree), in seconds; a tree's includes that of its
    members that ended since it started."""
    total = 0
    for one in _tree(pid, tree):
        with contextlib.suppress(OSError):
            # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
            if tree:
                # cutime, cstime (16, 17): the children it has reaped. Without them a PostgreSQL
                # backend or autovacuum worker that ended took its CPU out of the sum, and a phase
                # could show less CPU at its end than at its start.
                total += int(fields[13]) + int(fields[14])
    return total / _TICKS


def stores_cpu_seconds() -> float:
    """CPU seconds of this machine's Redis and PostgreSQL (with its backends), which serve the server
    in those modes."""
    pids = [by_name("redis-server"), by_name("postgres")]
    return sum(cpu_seconds(pid) for pid in pids if pid is not None)


def rss_bytes(pid: int) -> int:
    """Resident memory of the process tree, in bytes."""
    total = 0
    for one in _tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


@dataclass
class UsageSampler:
    """Samples CPU% (100 = one core) and RSS once a second while running."""

    pid: int
    tree: bool = True  # with descendants (server workers); False for the generator, whose children are clients
    interval: float = 1.0
    cpu: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _start: tuple[float, float] = (0.0, 0.0)

    def start(self) -> None:
        self._start = (time.monotonic(), cpu_seconds(self.pid, self.tree))
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        wall, cpu = self._start
        while True:
            await asyncio.sleep(self.interval)
            now, used = time.monotonic(), cpu_seconds(self.pid, self.tree)
            self.cpu.append(100 * (used - cpu) / max(now - wall, 1e-6))
            self.rss.append(rss_bytes(self.pid))
            wall, cpu = now, used

    async def stop(self) -> dict[str, Any]:
        """Stop sampling; the mean over the whole window and the peaks."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        wall, cpu = self._start
        elapsed = max(time.monotonic() - wall, 1e-6)
        mib = 1024 * 1024
        return {
            "cpu_percent_mean": round(100 * (cpu_seconds(self.pid, self.tree) - cpu) / elapsed, 1),
            "cpu_percent_max": round(max(self.cpu), 1) if self.cpu else None,
            "rss_mib_max": round(max(self.rss) / mib, 1) if self.rss else round(rss_bytes(self.pid) / mib, 1),
            "samples": len(self.cpu),
        }


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine, from the first line of /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


class UsageGroup:
    """Samplers for several processes at once: the server, what shares its cores, and the whole
    machine (busy far beyond their sum means something else ran: the numbers are disturbed)."""

    def __init__(self, pids: dict[str, tuple[int, bool]]) -> None:
        self.samplers = {name: UsageSampler(pid, tree) for name, (pid, tree) in pids.items()}
        self._machine = (0, 0)

    def start(self) -> None:
        self._machine = machine_ticks()
        for sampler in self.samplers.values():
            sampler.start()

    async def stop(self) -> dict[str, dict[str, Any]]:
        busy, total = machine_ticks()
        usage = {name: await sampler.stop() for name, sampler in self.samplers.items()}
        cores = os.cpu_count() or 1
        share = (busy - self._machine[0]) / max(1, total - self._machine[1])
        usage["machine (all cores)"] = {"cpu_percent_mean": round(100 * cores * share, 1), "cpu_percent_max": None}
        return usage


def machine() -> dict[str, Any]:
    """What the results were measured on: cores, memory, versions, the open-file limit."""
    import sys

    import uvloop

    mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(int(mem) / 2**20, 1),
        "python": sys.version.split()[0],
        "uvloop": getattr(uvloop, "__version__", "?"),
        "aiohttp": aiohttp.__version__,
        "kernel": platform.release(),
        "open_files_limit": _nofile(),
    }


def _nofile() -> int:
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
