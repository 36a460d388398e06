"""The big-board benchmark at tiny size, end to end: it asserts correctness (every lookup answered,
every rank equal to the reference, the rebuild logged), never speed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USERS, LOOKUPS = 2000, 300


def test_tiny_big_board_answers_every_lookup_with_the_reference_rank(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [
        *(sys.executable, "-m", "bench", "bigboard", "--mode", "embedded"),
        *("--users", str(USERS), "--lookups", str(LOOKUPS), "--timeout", "100", "--out", str(out)),
    ]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0, output.decode(errors="replace")[-3000:]

    result = json.loads((out / "result.json").read_text())
    assert (out / "result.md").read_text().startswith("### Scoreboard big board")
    assert result["finished"] is True, result.get("error")
    assert all(result["checks"].values()), result["checks"]

    server = result["server"]
    for key in ("lookups", "lookups_serial"):  # x8 in flight, then one at a time
        lookups = server[key]
        assert lookups["sent"] == lookups["ok"] == LOOKUPS
        assert lookups["statuses"] == {"200": LOOKUPS} and lookups["errors"] == {}
        answers = lookups["checks"]
        assert answers["answers"] == answers["reference_checked"] == LOOKUPS
        assert answers["rank_out_of_range"] == 0
        assert answers["reference_mismatches"] == 0, answers["first_mismatches"]

    rebuild = server["rebuild"]
    assert rebuild is not None and rebuild["users"] == USERS
    assert isinstance(rebuild["seconds"], int | float)
    assert server["start_to_ready_seconds"] > 0 and server["rss_mib_after_rebuild"] > 0
    assert server["server_exit_code"] == 0

    index = result["index"]
    assert index["rows"] == USERS
    assert index["rank"]["count"] == LOOKUPS and index["rank"]["reference_mismatches"] == 0
    assert set(result["targets"]) >= {"rank_lookup_p99_ms_in_index", "rebuild_seconds_server_log"}
