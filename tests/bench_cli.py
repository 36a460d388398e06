"""`python -m bench ...` as the bench's smoke tests run it: in a session of its own, killed whole
if it outlives its time, its result.json read back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_bench(out: Path, *args: str, within: float) -> dict[str, Any]:
    """Run `python -m bench <args> --out <out>`; assert it exited 0; its result.json."""
    command = [sys.executable, "-m", "bench", *args, "--out", str(out)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=within)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0, output.decode(errors="replace")[-3000:]
    result: dict[str, Any] = json.loads((out / "result.json").read_text())
    return result
