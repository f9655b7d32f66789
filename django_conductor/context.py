"""The ``ctx`` a handler receives, and the replay rules: a recorded step returns its stored
result without running; a new step's result is committed before the handler goes on."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from django.utils import timezone

from . import payloads
from .cancellation import cancel_tree
from .conf import seconds
from .exceptions import (
    ChildExecutionFailed,
    ChildExecutionTimeout,
    ConductorError,
    DuplicateStepName,
    ExecutionCancelled,
    PayloadError,
    StepResultError,
)
from .registry import registry
from .sql import START_CHILD, server_cursor
from .step_writer import StepRecord, StepWriter, StepWriterClosed

if TYPE_CHECKING:
    from .definition import Task

logger = logging.getLogger("django_conductor.execution")

TIMEOUT_REASON = "Timed out: the parent stopped waiting"


class Park(BaseException):
    """Unwinds the handler to park the execution; a BaseException so that a handler's
    ``except Exception`` cannot swallow it."""

    def __init__(self, status: str, run_at: datetime | None) -> None:
        super().__init__(status)
        self.status = status
        self.run_at = run_at


class LeaseLost(BaseException):
    """Another worker owns the execution now: abandon this attempt without writing."""


@dataclass(frozen=True)
class Event:
    """What a handler receives as ``event``."""

    name: str
    payload: Any
    execution_id: int
    attempt: int


@dataclass
class RecordedStep:
    kind: str
    result: Any
    error: str
    finished: bool
    wake_at: datetime | None
    child_id: int | None

    @classmethod
    def from_row(cls, row: list[Any]) -> tuple[str, RecordedStep]:
        name, kind, result, error, finished, wake_at, child_id = row
        wake = datetime.fromisoformat(wake_at) if wake_at else None
        return name, cls(kind, result, error or "", finished, wake, child_id)


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
        conn: psycopg.Connection,
        writer: StepWriter,
        cancelled: bool = False,
    ) -> None:
        self.execution_id = execution_id
        self.task_name = task_name
        self.queue = queue
        self.attempt = attempt
        self._claims = claims
        self._recorded = recorded
        self._stopping = stopping
        self._conn = conn
        self._writer = writer
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
        if self._cancelled:
            raise ExecutionCancelled(f"Execution {self.execution_id} was cancelled.")
        if self._stopping.is_set():
            raise Park("pending", timezone.now())

    def step(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` once per execution; later replays return its stored JSON result."""
        recorded = self._begin(name, "step")
        if recorded is not None:
            return recorded.result
        started_at = timezone.now()
        value = fn(*args, **kwargs)
        return self._finish_step(name, value, started_at)

    def _finish_step(self, name: str, value: Any, started_at: datetime) -> Any:
        text = payloads.dumps_or(
            value,
            lambda why: StepResultError(f"Step {name!r} returned a value that is not JSON: {why}"),
        )
        self._record(name, "step", text, started_at, finished_at=timezone.now())
        return payloads.loads(text)

    def sleep(self, name: str, duration: float | timedelta) -> None:
        """Park until ``duration`` after the first call; the worker slot is freed meanwhile."""
        if name in self._recorded:
            self.sleep_until(name, timezone.now())  # the recorded wake time wins
            return
        self.sleep_until(name, timezone.now() + timedelta(seconds=seconds(duration)))

    def sleep_until(self, name: str, when: datetime) -> None:
        """Park until ``when``, fixed at the first call; sleeping uses up no attempt."""
        if not isinstance(when, datetime) or timezone.is_naive(when):
            raise ValueError(f"Sleep {name!r} needs a timezone-aware datetime, not {when!r}")
        recorded = self._begin(name, "sleep")
        now = timezone.now()
        if recorded is None:
            done = when <= now
            self._record(name, "sleep", None, now, finished_at=now if done else None, wake_at=when)
            if done:
                return
        else:
            when = recorded.wake_at or now
            if when <= now:
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
        recorded = self._begin(step_name, "invoke")
        if recorded is None:
            self._start_child(step_name, task, payload, timeout, queue)
            raise Park("waiting", self._deadline(timeout))
        if recorded.finished:
            if not recorded.error:
                return recorded.result
            if recorded.error.startswith(TIMEOUT_REASON):
                raise ChildExecutionTimeout(f"Child {step_name!r}: {recorded.error}")
            raise ChildExecutionFailed(f"Child execution failed: {recorded.error}")
        if recorded.wake_at is not None and recorded.wake_at <= timezone.now():
            if recorded.child_id is not None:
                reason = f"{TIMEOUT_REASON} at step {step_name!r}."
                with self._conn.transaction(), server_cursor(self._conn) as cursor:
                    cancel_tree(cursor, recorded.child_id, reason)
            raise ChildExecutionTimeout(
                f"Child {step_name!r} did not finish by {recorded.wake_at.isoformat()}; "
                "it was cancelled."
            )
        raise Park("waiting", recorded.wake_at)

    def _deadline(self, timeout: float | timedelta | None) -> datetime | None:
        return None if timeout is None else timezone.now() + timedelta(seconds=seconds(timeout))

    def _start_child(
        self,
        step_name: str,
        task: Task | str,
        payload: Any,
        timeout: float | timedelta | None,
        queue: str | None,
    ) -> None:
        child = registry.get(task) if isinstance(task, str) else task
        if not child.invocable:
            raise ConductorError(
                f"Task {child.name!r} is not invocable; it runs from its triggers."
            )
        self._ensure_autocommit(step_name)
        text = payloads.dumps_or(
            payload,
            lambda why: PayloadError(f"The payload for child {step_name!r} is not JSON: {why}"),
        )
        params = {
            "id": self.execution_id,
            "claims": self._claims,
            "name": step_name,
            "task_name": child.name,
            "queue": queue or child.queue,
            "payload": text,
            "priority": child.priority,
            "max_attempts": child.max_attempts,
            "deadline": self._deadline(timeout),
        }
        with server_cursor(self._conn) as cursor:
            cursor.execute(START_CHILD, params)
            if cursor.rowcount != 1:
                raise LeaseLost(step_name)

    def _begin(self, name: str, kind: str) -> RecordedStep | None:
        if not isinstance(name, str) or not name or len(name) > 200:
            raise ValueError(
                f"A step name must be a non-empty string of at most 200 characters: {name!r}"
            )
        if name in self._seen:
            raise DuplicateStepName(
                f"Step name {name!r} is used twice in one run of {self.task_name!r}; "
                "give every step its own name."
            )
        self._seen.add(name)
        recorded = self._recorded.get(name)
        if recorded is None:
            self.checkpoint()
        elif recorded.kind != kind:
            raise DuplicateStepName(
                f"Step name {name!r} was recorded as a {recorded.kind} and is now used as a "
                f"{kind}; step names must be stable across replays."
            )
        return recorded

    def _ensure_autocommit(self, name: str) -> None:
        if self._conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raise ConductorError(
                f"Step {name!r} is inside a transaction (transaction.atomic()): durable "
                "records must commit on their own. Call ctx methods outside atomic blocks "
                "and put the atomic block inside the step's function."
            )

    def _record(
        self,
        name: str,
        kind: str,
        result: str | None,
        started_at: datetime,
        *,
        finished_at: datetime | None,
        wake_at: datetime | None = None,
    ) -> None:
        self._ensure_autocommit(name)
        record = StepRecord(
            self.execution_id, self._claims, name, kind, result, started_at, finished_at, wake_at
        )
        try:
            written = self._writer.record(record)
        except StepWriterClosed:
            raise LeaseLost(name) from None  # the worker handed this execution back
        if not written:
            raise LeaseLost(name)


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
        recorded = self._sync._begin(name, "step")
        if recorded is not None:
            return recorded.result
        started_at = timezone.now()
        value = fn(*args, **kwargs)
        if hasattr(value, "__await__"):
            value = await value
        return self._sync._finish_step(name, value, started_at)

    async def sleep(self, name: str, duration: float | timedelta) -> None:
        self._sync.sleep(name, duration)

    async def sleep_until(self, name: str, when: datetime) -> None:
        self._sync.sleep_until(name, when)

    async def invoke(self, step_name: str, task: Task | str, payload: Any = None, **kw: Any) -> Any:
        return self._sync.invoke(step_name, task, payload, **kw)

    async def checkpoint(self) -> None:
        self._sync.checkpoint()
