"""The ``ctx`` a handler receives, and the replay rules: a recorded step returns its stored
result without running; a new step's result is committed before the handler goes on."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from django.utils import timezone

from . import children, payloads
from .clock import DatabaseClock
from .conf import seconds
from .exceptions import (
    DuplicateStepName,
    ExecutionCancelled,
    StepResultError,
    TransactionNotAllowed,
    child_error,
    error_text,
)
from .group_commit import WriterClosed
from .lease import Lease
from .replay import LeaseLost, Park, RecordedStep
from .step_writer import StepRecord, StepWriter

if TYPE_CHECKING:
    from .definition import Task

logger = logging.getLogger("django_conductor.execution")

_IN_TRANSACTION = (psycopg.pq.TransactionStatus.INTRANS, psycopg.pq.TransactionStatus.INERROR)


class Context:
    """Durable operations for one attempt of one execution."""

    def __init__(
        self,
        *,
        execution_id: int,
        task_name: str,
        queue: str,
        attempt: int,
        claims: int,
        recorded: dict[str, RecordedStep],
        stopping: threading.Event,
        db: Any,
        writer: StepWriter,
        clock: DatabaseClock,
        lease: Lease,
        cancelled: bool = False,
    ) -> None:
        self.execution_id = execution_id
        self.task_name = task_name
        self.queue = queue
        self.attempt = attempt
        self._claims = claims
        self._recorded = recorded
        self._stopping = stopping
        #: This thread's Django connection (its wrapper, for the atomic-block check) and the
        #: psycopg connection under it, on which child invokes are recorded.
        self._db = db
        self._conn: psycopg.Connection = db.connection
        self._writer = writer
        self._clock = clock
        self._lease = lease
        self._seen: set[str] = set()
        self._cancelled = cancelled
        self.logger = logging.LoggerAdapter(
            logger,
            {
                "execution_id": execution_id,
                "task": task_name,
                "queue": queue,
                "attempt": attempt,
            },
        )

    @property
    def cancelled(self) -> bool:
        """True once someone asked to cancel this execution."""
        return self._cancelled

    def request_cancel(self) -> None:
        self._cancelled = True

    def checkpoint(self) -> None:
        """A release point: park if the worker is stopping, raise if cancelled."""
        self._refuse_transaction("checkpoint", None)
        self._ensure_lease("checkpoint")
        self.release_point()

    def release_point(self) -> None:
        """Park if the worker is stopping, raise if cancelled (the checks that need no
        database: ``checkpoint()`` without its guards)."""
        if self._cancelled:
            raise ExecutionCancelled(f"Execution {self.execution_id} was cancelled.")
        if self._stopping.is_set():
            raise Park("pending", run_in=0.0)

    def step(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` once per execution; later replays return its stored JSON result."""
        recorded = self._begin("step", name, "step")
        if recorded is not None:
            return recorded.result
        began = time.monotonic()
        try:
            value = fn(*args, **kwargs)
        except Exception as exc:
            self._record_raised(name, began, exc)
            raise
        return self._finish_step(name, value, began)

    def _finish_step(self, name: str, value: Any, began: float) -> Any:
        try:
            text = payloads.dumps_or(
                value,
                lambda why: StepResultError(
                    f"Step {name!r} returned a value that is not JSON: {why}"
                ),
                root="the result",
            )
        except StepResultError as exc:
            self._record_raised(name, began, exc)
            raise
        self._record(name, "step", result=text, began=began, ended=time.monotonic())
        return payloads.loads(text)

    def _record_raised(self, name: str, began: float, exc: Exception) -> None:
        """Put the step that raised on record, for the admin to draw; a replay runs it again."""
        failure = error_text(exc)
        self._record(name, "step", failure=failure, began=began, ended=time.monotonic())

    def sleep(self, name: str, duration: float | timedelta) -> None:
        """Park until ``duration`` after the first call; the worker slot is freed meanwhile."""
        self._sleep("sleep", name, wake_in=seconds(duration))

    def sleep_until(self, name: str, when: datetime) -> None:
        """Park until ``when``, fixed at the first call; sleeping uses up no attempt."""
        if not isinstance(when, datetime) or timezone.is_naive(when):
            raise ValueError(f"Sleep {name!r} needs a timezone-aware datetime, not {when!r}")
        self._sleep("sleep_until", name, wake_at=when)

    def _sleep(
        self, call: str, name: str, *, wake_at: datetime | None = None, wake_in: float | None = None
    ) -> None:
        recorded = self._begin(call, name, "sleep")
        if recorded is None:
            record = self._record(name, "sleep", wake_at=wake_at, wake_in=wake_in)
            if record.over:
                return
            when = record.recorded_wake_at
        else:
            when = recorded.wake_at
            if when is None or when <= self._clock.now():
                return
        raise Park("sleeping", when)

    def invoke(
        self,
        step_name: str,
        task: Task | str,
        payload: Any = None,
        *,
        timeout: float | timedelta | None = None,
        queue: str | None = None,
    ) -> Any:
        """Run a child execution and return its result, parking this one meanwhile."""
        recorded = self._begin("invoke", step_name, "invoke")
        if recorded is None:
            try:
                deadline = children.start(self._owner(step_name), task, payload, timeout, queue)
            except ExecutionCancelled:
                self._cancelled = True
                raise
            raise Park("waiting", deadline)
        if recorded.finished:
            if not recorded.error:
                return recorded.result
            raise child_error(step_name, recorded.error, recorded.wake_at)
        if recorded.wake_at is not None and recorded.wake_at <= self._clock.now():
            children.time_out(self._owner(step_name), recorded.wake_at)
        raise Park("waiting", recorded.wake_at)

    def _owner(self, step_name: str) -> children.Owner:
        return children.Owner(self._conn, self.execution_id, self._claims, step_name)

    def _begin(self, call: str, name: str, kind: str) -> RecordedStep | None:
        """The checks every ctx call makes before anything runs or is written; returns the
        step's record when a replay has one."""
        if not isinstance(name, str) or not name or len(name) > 200:
            raise ValueError(
                f"A step name must be a non-empty string of at most 200 characters: {name!r}"
            )
        self._refuse_transaction(call, name)
        self._ensure_lease(name)
        if name in self._seen:
            raise DuplicateStepName(
                f"Step name {name!r} is used twice in one run of {self.task_name!r}; "
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

    def _ensure_lease(self, name: str) -> None:
        """Start nothing once this process's own view of the lease has run out: another
        worker may be running the execution by now (this one was frozen, or cut off)."""
        if not self._lease.held:
            self.logger.warning("The lease ran out before %r; leaving the execution", name)
            raise LeaseLost(name)

    def _refuse_transaction(self, call: str, name: str | None) -> None:
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

    def _record(self, name: str, kind: str, **fields: Any) -> StepRecord:
        """Hand a record to the step writer and wait until it is committed."""
        record = StepRecord(
            execution_id=self.execution_id, claims=self._claims, name=name, kind=kind, **fields
        )
        try:
            written = self._writer.record(record)
        except WriterClosed:
            raise LeaseLost(name) from None  # the worker handed this execution back
        if not written:
            raise LeaseLost(name)
        return record


class AsyncContext:
    """The same operations for ``async def`` handlers: ``await ctx.step(...)``."""

    def __init__(self, sync: Context) -> None:
        self._sync = sync
        self.execution_id = sync.execution_id
        self.attempt = sync.attempt
        self.logger = sync.logger

    @property
    def cancelled(self) -> bool:
        return self._sync.cancelled

    async def step(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        recorded = self._sync._begin("step", name, "step")
        if recorded is not None:
            return recorded.result
        began = time.monotonic()
        try:
            value = fn(*args, **kwargs)
            if hasattr(value, "__await__"):
                value = await value
        except Exception as exc:
            self._sync._record_raised(name, began, exc)
            raise
        return self._sync._finish_step(name, value, began)

    async def sleep(self, name: str, duration: float | timedelta) -> None:
        self._sync.sleep(name, duration)

    async def sleep_until(self, name: str, when: datetime) -> None:
        self._sync.sleep_until(name, when)

    async def invoke(self, step_name: str, task: Task | str, payload: Any = None, **kw: Any) -> Any:
        return self._sync.invoke(step_name, task, payload, **kw)

    async def checkpoint(self) -> None:
        self._sync.checkpoint()
