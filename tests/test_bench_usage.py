"""The bench's reading of other processes' usage: which process stands for a named server, and
how much CPU a process tree has used."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.usage import by_name, cpu_seconds, eldest

# Uses this much CPU time (not wall time), then ends. The kernel's tick accounting, which /proc
# reports, may count a little less than process_time() (0.29 of 0.3 in one run): the checks below
# leave a margin.
_BURN = "import time\nwhile time.process_time() < 0.5:\n    pass\n"
# Runs _BURN as a child it waits for (so it reaps it), says so, then waits for its stdin to close.
_PARENT = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {_BURN!r}], check=True)\nprint('reaped', flush=True)\nsys.stdin.read()\n"


def test_the_server_is_the_parent_of_its_named_children_whatever_their_ids() -> None:
    # Process ids wrap around: a PostgreSQL backend (101) may have a lower id than its postmaster (500).
    assert eldest({101: 500, 500: 1, 300: 500}) == 500
    assert eldest({7: 1}) == 7
    assert eldest({}) is None


def test_a_process_is_found_by_its_name() -> None:
    with open(f"/proc/{os.getpid()}/comm") as comm:
        name = comm.read().strip()
    found = by_name(name)
    assert found is not None  # this process, or an ancestor of the same name (a test runner's)
    with open(f"/proc/{found}/comm") as comm:
        assert comm.read().strip() == name
    assert by_name("no-such-process-name") is None


def test_a_tree_keeps_the_cpu_of_its_members_that_ended() -> None:
    # PostgreSQL's backends and autovacuum workers come and go: the postmaster's tree must not
    # lose what one used when it ends (the bench once showed a phase with negative CPU).
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "reaped"
        assert cpu_seconds(parent.pid) >= 0.4  # the ended child's CPU, counted by the tree
        assert cpu_seconds(parent.pid, tree=False) < 0.3  # the process alone: only its own
    finally:
        parent.communicate("")
