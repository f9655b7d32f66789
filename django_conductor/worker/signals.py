"""SIGTERM and SIGINT for a worker process: the first stops claiming and lets running
executions finish within the shutdown grace; the second hands everything back at once."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from ..conf import settings

logger = logging.getLogger("django_conductor.worker")


class StopSignals:
    def __init__(self, stop: Callable[..., None], stopping: threading.Event) -> None:
        self._stop = stop
        self._stopping = stopping
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self._stopping.is_set():
            logger.warning("Got %s again: handing everything back and exiting now", name)
            self._stop(now=True)
        else:
            logger.info(
                "Got %s: finishing running executions (grace %.0fs); send it again to exit now",
                name,
                settings.SHUTDOWN_GRACE,
            )
            self._stop()
