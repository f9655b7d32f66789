"""The ``ctx`` a batch handler receives. A batch's members change from one attempt to the
next (each is retried on its own schedule, alongside other events), so nothing could be
replayed: a batch offers no steps, sleeps, child invokes or waits, and says so when called."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import NoReturn

from .call_guards import park_point
from .clock import DatabaseClock
from .exceptions import NonRetryableError
from .windows import Window

logger = logging.getLogger("django_conductor.execution")

#: The ``Context`` calls a batch has not, each of which would need a replay.
DURABLE_CALLS = frozenset(
    {
        "step",
        "sleep",
        "sleep_until",
        "invoke",
        "invoke_all",
        "wait_for_event",
        "emit",
        "schedule",
        "unschedule",
        "cancel",
    }
)


class BatchContext:
    """One attempt of a batch of a batch task's executions."""

    def __init__(
        self,
        *,
        task_name: str,
        execution_ids: list[int],
        attempts: list[int],
        stopping: threading.Event,
        clock: DatabaseClock,
        window: Window | None = None,
    ) -> None:
        self.task_name = task_name
        #: The members' execution ids and attempt numbers, in the order of the events.
        self.execution_ids = execution_ids
        self.attempts = attempts
        self._stopping = stopping
        self._clock = clock
        self._window = window
        self._cancelled: set[int] = set()
        self.logger = logging.LoggerAdapter(
            logger, {"task": task_name, "execution_ids": execution_ids, "batch": len(attempts)}
        )

    @property
    def cancelled(self) -> frozenset[int]:
        """The members someone asked to cancel while the batch ran: they end cancelled,
        whatever the handler returns for them."""
        return frozenset(self._cancelled)

    def request_cancel(self, execution_id: int) -> None:
        self._cancelled.add(execution_id)

    def checkpoint(self) -> None:
        """A release point: put the whole batch back, using no attempt, when the worker is
        stopping or the task's window has closed."""
        park_point(self._stopping, self._window, self._clock)

    def __getattr__(self, name: str) -> Callable[..., NoReturn]:
        if name not in DURABLE_CALLS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

        def unavailable(*args: object, **kwargs: object) -> NoReturn:
            raise NonRetryableError(
                f"ctx.{name}() is not available in a batch handler: a batch's executions "
                "change from one attempt to the next, so nothing it did could be replayed. "
                "Make the batch's work safe to run again (e.g. bulk_create(..., "
                "ignore_conflicts=True)), or give each event a task of its own with steps."
            )

        return unavailable
