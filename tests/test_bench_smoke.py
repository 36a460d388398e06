"""The benchmark at tiny size, end to end: it asserts correctness (every award, every client), never speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--mode", "embedded", "--clients", "50", "--rate", "50", "--duration", "5", "--read-rate", "20"]


def _session_members(sid: int) -> list[int]:
    """Processes still in the session of the bench (its client processes, if any were left)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def _listening(port: int) -> bool:
    needle = f":{port:04X} "
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(needle.strip()) and fields[3] == "0A":  # 0A = LISTEN
                return True
    return False


def test_tiny_run_delivers_every_award_to_every_client(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "bench", "run", *TINY, "--no-baselines", "--no-capacity", "--out", str(out)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=50)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.communicate()
    assert proc.returncode == 0, output.decode(errors="replace")[-3000:]

    result = json.loads((out / "result.json").read_text())
    assert (out / "result.md").read_text().startswith("### Scoreboard bench")
    assert result["finished"] is True
    assert all(result["checks"].values()), result["checks"]

    sb = result["scoreboard"]
    loop = sb["open_loop"]
    update, top = loop["POST /api/v1/scoreboard/update"], loop["GET /api/v1/scoreboard/top"]
    assert loop["scheduled_awards"] == 250
    assert update["sent"] == update["ok"] == 250 and update["errors"] == {} and update["statuses"] == {"200": 250}
    assert top["sent"] == top["ok"] == 100 and top["errors"] == {}
    assert loop["generator_dropped"] == 0

    ws = sb["websocket"]
    assert ws["connected"] == 50 and ws["connect_errors"] == {} and ws["closed_early"] == {}
    assert len(sb["final_board"]) == 10
    # Every client's last leaderboard_update equals the final GET /top in rank, userId and score.
    assert ws["boards"] == {"matching": 50, "mismatching": 0, "missing": 0, "sample_mismatch": None}
    assert ws["live_updates"] >= 50  # each client saw the board move at least once
    assert sb["server_exit_code"] == 0

    # Nothing left behind: no client process in the bench's session, no server on its port.
    deadline = time.monotonic() + 5
    while (_session_members(proc.pid) or _listening(sb["port"])) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _session_members(proc.pid) == []
    assert not _listening(sb["port"])
