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
# With "once" (single-use action tokens) each line is sent once and the thread stops at the
# response that makes it as many responses as lines; "elapsed_us" is the time from the first
# request to that response (wrk's own duration is always -d). Requests after the last line go to
# FILLER, a path no server under test has (a cheap 404), so a connection that finishes early
# reuses no token meanwhile; their answers are told apart by that 404 and not counted.
FILLER = "/bench-filler-not-found"
SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

local threads = {}
setup = function(thread) table.insert(threads, thread) end

local lines, n, i, answered, started, verified = {}, 0, 0, 0, nil, false
local once = ONCE
elapsed, fillers = 0, 0
init = function(args)
  for line in io.lines(args[1]) do
    n = n + 1
    lines[n] = line
  end
end
request = function()
  -- wrk calls request() once before the run to check it (on this, the only thread's state)
  -- and throws the answer away: that call must not use up a line or start the clock.
  if not verified then
    verified = true
    return wrk.format("GET", "/healthz")
  end
  if not started then started = now_us() end
  i = i + 1
  if once and i > n then return wrk.format("GET", "FILLER") end
  local method, path, bearer, body = lines[(i - 1) % n + 1]:match("^(%S+) (%S+) (%S+) ?(.*)$")
  local headers = {}
  if bearer ~= "-" then headers["Authorization"] = "Bearer " .. bearer end
  if body ~= "" then headers["Content-Type"] = "application/json" else body = nil end
  return wrk.format(method, path, headers, body)
end
-- RESPONSE --
done = function(summary, latency, requests)
  local e = summary.errors
  local elapsed_us, filler_answers = 0, 0
  for _, thread in ipairs(threads) do
    elapsed_us = math.max(elapsed_us, thread:get("elapsed"))
    filler_answers = filler_answers + thread:get("fillers")
  end
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"elapsed_us":%d,"fillers":%d,"non2xx":%d,"connect":%d,' ..
    '"read":%d,"write":%d,"timeout":%d,"p50":%d,"p95":%d,"p99":%d,"max":%d}\n',
    summary.requests, summary.duration, elapsed_us, filler_answers, e.status, e.connect, e.read, e.write,
    e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""
# Only in "once" runs: wrk parses every response's headers when the script has response().
RESPONSE = """
response = function(status, headers, body)
  if status == 404 then  -- a filler's answer (the lines' paths all exist)
    fillers = fillers + 1
    return
  end
  answered = answered + 1
  if answered == n then
    elapsed = now_us() - started
    wrk.thread:stop()
  end
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
    base: str,
    lines: Sequence[str],
    *,
    connections: int,
    seconds: float,
    once: bool = False,
    timeout_seconds: float = 10.0,
) -> dict[str, Any]:
    """`connections` keep-alive connections back to back for `seconds`, cycling through `lines`
    (or, with `once`, sending each line once and stopping at the last answer). The same summary
    shape as bench.load.RouteStats.summary (ok = 2xx answers)."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script, requests = Path(tmp) / "requests.lua", Path(tmp) / "requests.txt"
        script.write_text(
            SCRIPT.replace("ONCE", "true" if once else "false")
            .replace("FILLER", FILLER)
            .replace("-- RESPONSE --", RESPONSE if once else "")
        )
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
    finished = once and raw["elapsed_us"] > 0
    elapsed = (raw["elapsed_us"] if finished else raw["duration_us"]) / 1e6
    # Once: every line answered by the stop, and the fillers' 404s left out. (Their latencies are
    # in wrk's histogram: at most one per connection after its last line.)
    answers = len(lines) if finished else raw["requests"] - raw["fillers"]
    non2xx = raw["non2xx"] - raw["fillers"]
    ok = answers - non2xx
    errors = {k: raw[k] for k in ("connect", "read", "write", "timeout") if raw[k]}
    if non2xx:
        errors["non-2xx"] = non2xx
    return {
        "generator": "wrk",
        "sent": answers,
        "seconds": round(elapsed, 6),
        "ok": ok,
        "statuses": {"2xx": ok, "other": non2xx},
        "errors": errors,
        "latency_ms": {q: round(raw[q] / 1000, 2) for q in ("p50", "p95", "p99", "max")},
        "ok_per_second": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
    }
