"""`--workers N` with metrics: the processes write their values to files in one folder, and a
scrape answered by any of them adds up all the files (prometheus-client's multiprocess mode)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.multiprocess import mark_process_dead

from .export import MULTIPROC_ENV


@contextlib.contextmanager
def shared_values() -> Iterator[Callable[[int], None]]:
    """Prepare the folder before the workers start (set in the environment they inherit):
    PROMETHEUS_MULTIPROC_DIR's, emptied of an earlier run's files, or a new temporary one removed
    at the end. Yields what to call with the pid of each worker that ended."""
    given = os.environ.get(MULTIPROC_ENV)
    folder = Path(given) if given else Path(tempfile.mkdtemp(prefix="scoreboard-metrics-"))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):  # a dead run's counters would be added to this one's
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(folder)

    def ended(pid: int) -> None:
        # Its live gauges (connections, memory) leave the sums; its counters stay in the totals.
        mark_process_dead(pid, str(folder))

    try:
        yield ended
    finally:
        if not given:
            shutil.rmtree(folder, ignore_errors=True)
