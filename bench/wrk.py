"""Closed-loop capacity with wrk (C, one thread): a Python client tops out near 6k requests/s,
below what the servers under test can serve, so it would measure itself."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Each request takes the next line of the requests file ("METHOD PATH BEARER BODY", "-" for no
# bearer); done() prints one JSON line with the counts and latency percentiles (microseconds).
SCRIPT = r"""
local lines, n, i = {}, 0, 0
init = function(args)
  for line in io.lines(args[1]) do
    n = n + 1
    lines[n] = line
  end
end
request = function()
  i = i % n + 1
  local method, path, bearer, body = lines[i]:match("^(%S+) (%S+) (%S+) ?(.*)$")
  local headers = {}
  if bearer ~= "-" then headers["Authorization"] = "Bearer " .. bearer end
  if body ~= "" then headers["Content-Type"] = "application/json" else body = nil end
  return wrk.format(method, path, headers, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,' ..
    '"p50":%d,"p95":%d,"p99":%d,"max":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


def available() -> bool:
    """True when wrk is installed (Debian package `wrk`)."""
    return shutil.which("wrk") is not None


def request_line(method: str, path: str, bearer: str | None = None, body: bytes = b"") -> str:
    """One line of the requests file."""
    if b"\n" in body:
        raise ValueError("request bodies must be one line")
    return f"{method} {path} {bearer or '-'} {body.decode()}"


async def closed_loop(
    base: str, lines: Sequence[str], *, connections: int, seconds: float, timeout_seconds: float = 10.0
) -> dict[str, Any]:
    """`connections` keep-alive connections back to back for `seconds`, cycling through `lines`.
    The same summary shape as bench.load.RouteStats.summary (ok = 2xx answers)."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script, requests = Path(tmp) / "requests.lua", Path(tmp) / "requests.txt"
        script.write_text(SCRIPT)
        requests.write_text("\n".join(lines) + "\n")
        proc = await asyncio.create_subprocess_exec(
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={timeout_seconds:g}s",
            "-s",
            str(script),
            base,
            "--",
            str(requests),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(proc.communicate(), seconds + timeout_seconds + 30)
    text = output.decode(errors="replace")
    found = [line for line in text.splitlines() if line.startswith("WRK_JSON ")]
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {text[-500:]}")
    raw = json.loads(found[-1].removeprefix("WRK_JSON "))
    elapsed = raw["duration_us"] / 1e6
    ok = raw["requests"] - raw["non2xx"]
    errors = {k: raw[k] for k in ("connect", "read", "write", "timeout") if raw[k]}
    if raw["non2xx"]:
        errors["non-2xx"] = raw["non2xx"]
    return {
        "generator": "wrk",
        "sent": raw["requests"],
        "ok": ok,
        "statuses": {"2xx": ok, "other": raw["non2xx"]},
        "errors": errors,
        "latency_ms": {q: round(raw[q] / 1000, 2) for q in ("p50", "p95", "p99", "max")},
        "ok_per_second": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
    }
