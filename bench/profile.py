"""py-spy on the server during the timed phase, and the top entries of its folded stacks."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    """The py-spy executable next to this Python, or on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


async def start(pid: int, seconds: float, out: Path, *, subprocesses: bool) -> asyncio.subprocess.Process | None:
    """`py-spy record` in raw (folded) format; None when py-spy is not installed."""
    exe = py_spy()
    if exe is None:
        return None
    args = [exe, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate", "200"]
    args += ["--format", "raw", "--output", str(out), "--nonblocking"]
    if subprocesses:
        args.append("--subprocesses")
    return await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )


async def finish(proc: asyncio.subprocess.Process | None, within: float = 30.0) -> str | None:
    """Wait for py-spy; its error output when it failed, else None."""
    if proc is None:
        return "py-spy is not installed"
    try:
        _, err = await asyncio.wait_for(proc.communicate(), within)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return "py-spy did not finish in time"
    if proc.returncode != 0:
        return err.decode(errors="replace").strip()[-500:] or f"py-spy exited with {proc.returncode}"
    return None


def top_entries(folded: Path, limit: int = 40) -> dict[str, Any]:
    """Share of samples per function: on-CPU itself (self) and anywhere on the stack (total)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in folded.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        # By function and file, not line: a function's samples spread over its lines.
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": f, "percent": round(100 * n / samples, 1)} for f, n in counter.most_common(limit)]

    return {"samples": samples, "self": share(own) if samples else [], "total": share(total) if samples else []}
