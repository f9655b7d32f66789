"""The checks every ``ctx`` call passes before anything runs or is written. Kept apart from
``Context`` so that its methods read as the durable operations they are."""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg

from .clock import DatabaseClock
from .exceptions import DuplicateStepName, ExecutionCancelled, TransactionNotAllowed
from .lease import Lease
from .replay import LeaseLost, Park, RecordedStep, WindowClosed
from .statuses import Status
from .windows import Window, closed_until

_IN_TRANSACTION = (psycopg.pq.TransactionStatus.INTRANS, psycopg.pq.TransactionStatus.INERROR)


def park_point(stopping: threading.Event, window: Window | None, clock: DatabaseClock) -> None:
    """Park, using no attempt, if the worker is stopping or the task's window has closed
    (on the claim's clock): the release point of an execution and of a batch."""
    if stopping.is_set():
        raise Park(Status.PENDING, run_in=0.0)
    if window is not None:
        opening = closed_until(window, clock.now())
        if opening is not None:
            raise WindowClosed(opening)


class CallGuards:
    """One attempt's refusals (a transaction, a lost lease, a reused step name) and its
    release points (a cancel, a stopping worker, the task's window closing)."""

    def __init__(
        self,
        *,
        execution_id: int,
        task_name: str,
        recorded: dict[str, RecordedStep],
        stopping: threading.Event,
        db: Any,
        lease: Lease,
        logger: logging.LoggerAdapter[logging.Logger],
        cancelled: bool,
        clock: DatabaseClock,
        window: Window | None = None,
    ) -> None:
        self._execution_id = execution_id
        self._task_name = task_name
        #: Set by the worker's listener thread when someone asks to cancel the execution.
        self.cancelled = cancelled
        self._recorded = recorded
        self._seen: set[str] = set()
        self._stopping = stopping
        #: This thread's Django connection (its wrapper, for the atomic-block check) and the
        #: psycopg connection under it.
        self._db = db
        self._conn: psycopg.Connection = db.connection
        self._lease = lease
        self._logger = logger
        self._clock = clock
        self._window = window

    def begin(self, call: str, name: str, kind: str) -> RecordedStep | None:
        """The checks every ctx call makes before anything runs or is written; returns the
        step's record when a replay has one."""
        if not isinstance(name, str) or not name or len(name) > 200:
            raise ValueError(
                f"A step name must be a non-empty string of at most 200 characters: {name!r}"
            )
        self.refuse_transaction(call, name)
        self.ensure_lease(name)
        if name in self._seen:
            raise DuplicateStepName(
                f"Step name {name!r} is used twice in one run of {self._task_name!r}; "
                "give every step its own name."
            )
        self._seen.add(name)
        recorded = self._recorded.get(name)
        if recorded is not None and recorded.kind != kind:
            raise DuplicateStepName(
                f"Step name {name!r} was recorded as a {recorded.kind} and is now used as a "
                f"{kind}; step names must be stable across replays."
            )
        if recorded is None or recorded.raised:
            self.release_point()
            return None
        return recorded

    def release_point(self) -> None:
        """Raise if cancelled, park if the worker is stopping or the task's window has
        closed: the checks that need no database (the window's is on the claim's clock)."""
        if self.cancelled:
            raise ExecutionCancelled(f"Execution {self._execution_id} was cancelled.")
        park_point(self._stopping, self._window, self._clock)

    def ensure_lease(self, name: str) -> None:
        """Start nothing once this process's own view of the lease has run out: another
        worker may be running the execution by now (this one was frozen, or cut off)."""
        if not self._lease.held:
            self._logger.warning("The lease ran out before %r; leaving the execution", name)
            raise LeaseLost(name)

    def refuse_transaction(self, call: str, name: str | None) -> None:
        """Durable records commit on connections of their own (the worker's step writer, or
        this execution's own in autocommit), never inside the handler's transaction: a
        call there would commit while the block around it could still roll back."""
        # A transaction is open (or failed) on this connection. A broken one (UNKNOWN, after
        # a server restart) is no transaction of the handler's: its next query fails as a
        # lost connection, which hands the execution back.
        status = self._conn.pgconn.transaction_status
        if self._db.in_atomic_block or status in _IN_TRANSACTION:
            what = f"ctx.{call}({name!r})" if name is not None else f"ctx.{call}()"
            raise TransactionNotAllowed(
                f"{what} was called inside a transaction (transaction.atomic()), and nothing "
                "was run. Steps, sleeps and child invokes are recorded by the worker on a "
                "connection of their own, so they cannot be part of your transaction. Call "
                "ctx methods outside atomic blocks, and put the atomic block inside the "
                "step's function instead."
            )
