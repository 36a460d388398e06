"""The frame of the bench commands that build a store, serve it and measure: bounded in time, in a
temporary directory removed afterwards, the result saying how far the run got."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .usage import machine, machine_ticks

Measure = Callable[[Path, dict[str, Any]], Awaitable[None]]


async def bounded_run(kind: str, opts: Any, measure: Measure, *, within: float, **extra: Any) -> dict[str, Any]:
    """`measure(workdir, result)` within `within` seconds; the result with the run's kind, start,
    machine, options (`opts`, a dataclass with `out`), `finished` (else `error`), the whole
    machine's CPU meanwhile and the wall time. The caller adds its checks."""
    opts.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    result: dict[str, Any] = {
        "kind": kind,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": machine(),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()},
        **extra,
    }
    ticks = machine_ticks()
    with tempfile.TemporaryDirectory(prefix=f"scoreboard-{kind}-") as tmp:
        try:
            async with asyncio.timeout(within):
                await measure(Path(tmp), result)
            result["finished"] = True
        except TimeoutError:
            result["finished"] = False
            result["error"] = f"timeout of {within:.0f} s reached"
        except Exception as exc:  # reported in the result; the measure's own clean-up has run
            result["finished"] = False
            result["error"] = f"{type(exc).__name__}: {exc}"
    result["machine_busy_percent"] = busy_since(ticks)
    result["wall_seconds"] = round(time.time() - started, 1)
    return result


def busy_since(ticks: tuple[int, int]) -> float:
    """The whole machine's CPU since `ticks` (machine_ticks()), 100 = one core."""
    busy, total = machine_ticks()
    return round(100 * (os.cpu_count() or 1) * (busy - ticks[0]) / max(1, total - ticks[1]), 1)
