"""A real worker in a thread of the test process, for tests that want the worker's
concurrency, its listener and its timing rather than ``drain()``'s one attempt at a time."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from ..worker import Worker
from .draining import refuse_transaction


@contextmanager
def worker_thread(
    *, concurrency: int = 2, queues: Iterable[str] = (), stop_timeout: float = 60.0
) -> Iterator[Worker]:
    """Run a ``Worker`` (no signal handlers touched) for the block; on leaving, stop it as
    SIGTERM would and wait for it. A duty that died fails the block with ``WorkerFailed``."""
    refuse_transaction("worker_thread()")
    worker = Worker(queues=queues, concurrency=concurrency, install_signal_handlers=False)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run, name="conductor-testing-worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(stop_timeout)
        if thread.is_alive():
            worker.stop(now=True)
            thread.join(stop_timeout)
    if thread.is_alive():
        raise RuntimeError(f"The worker thread did not stop within {stop_timeout}s.")
    if failures:
        raise failures[0]
