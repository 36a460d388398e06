"""`--workers N`: N processes serving one port (SO_REUSEPORT), restarted if one dies."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType

log = logging.getLogger(__name__)

RESTART_DELAY_SECONDS = 1.0
EXIT_MARGIN_SECONDS = 2.0  # past a worker's drain deadline, before it is killed
# A worker's exit code when it cannot start at all (its port or database refused, said in one line
# on stderr): another would not either, so the supervisor stops rather than restart it for ever.
CANNOT_START = 3


def supervise(
    serve: Callable[[], None],
    count: int,
    *,
    drain_seconds: float,
    poll_seconds: float = 0.5,
    on_exit: Callable[[int], None] | None = None,
) -> int:
    """Run `serve` in `count` child processes until SIGINT or SIGTERM, then stop them all: each
    drains (app/drain.py) and exits within `drain_seconds`; one still there a little later is
    killed. `on_exit` is told the pid of each child that ended. A worker that exits with
    CANNOT_START stops them all too, and the answer is 1 (else 0)."""

    def ended(process: BaseProcess) -> None:
        if on_exit is not None and process.pid is not None:
            on_exit(process.pid)

    context = multiprocessing.get_context("spawn")  # a clean interpreter each: no inherited loop
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    def start(index: int) -> BaseProcess:
        process = context.Process(target=serve, name=f"scoreboard-worker-{index}", daemon=False)
        process.start()
        log.info("worker %d started (pid %s)", index, process.pid)
        return process

    workers = [start(i) for i in range(count)]
    failed = False
    while not stopping:
        time.sleep(poll_seconds)
        for i, process in enumerate(workers):
            if not process.is_alive() and process.exitcode == CANNOT_START:
                stopping = failed = True
            if not process.is_alive() and not stopping:
                log.warning("worker %d (pid %s) exited with %s; restarting", i, process.pid, process.exitcode)
                ended(process)
                time.sleep(RESTART_DELAY_SECONDS)
                workers[i] = start(i)
    for process in workers:
        if process.is_alive():
            process.terminate()  # SIGTERM: the worker drains (a second signal, as from Ctrl+C too, changes nothing)
    deadline = time.monotonic() + drain_seconds + EXIT_MARGIN_SECONDS
    for process in workers:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            log.warning("worker pid %s still there after its drain deadline: killed", process.pid)
            process.kill()
            process.join()
        ended(process)
    return 1 if failed else 0
