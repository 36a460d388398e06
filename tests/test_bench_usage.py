"""The bench's reading of other processes' usage: which process stands for a named server."""

from __future__ import annotations

import os

from bench.usage import by_name, eldest


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
