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

from . import children, parallel
from .call_guards import CallGuards
from .clock import DatabaseClock
from .conf import seconds
from .exceptions import ExecutionCancelled, child_error
from .lease import Lease
from .replay import Park, RecordedStep
from .statuses import Status
from .step_records import StepRecords, StepWatcher
from .step_writer import StepWriter
from .trigger_calls import TriggerCalls
from .windows import Window

if TYPE_CHECKING:
    from .definition import Task

logger = logging.getLogger("django_conductor.execution")


class Context(TriggerCalls):
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
        window: Window | None = None,
        watch: StepWatcher | None = None,
    ) -> None:
        self.execution_id = execution_id
        self.task_name = task_name
        self.queue = queue
        self.attempt = attempt
        self._claims = claims
        #: The psycopg connection under this thread's Django connection: child invokes are
        #: recorded on it.
        self._conn: psycopg.Connection = db.connection
        self._clock = clock
        self.logger = logging.LoggerAdapter(
            logger,
            {
                "execution_id": execution_id,
                "task": task_name,
                "queue": queue,
                "attempt": attempt,
            },
        )
        self._guards = CallGuards(
            execution_id=execution_id,
            task_name=task_name,
            recorded=recorded,
            stopping=stopping,
            db=db,
            lease=lease,
            logger=self.logger,
            cancelled=cancelled,
            clock=clock,
            window=window,
        )
        self._steps = StepRecords(execution_id, claims, writer)
        #: The attempt's telemetry (``worker.telemetry``), None when nothing watches.
        self._watch = watch

    @property
    def cancelled(self) -> bool:
        """True once someone asked to cancel this execution."""
        return self._guards.cancelled

    def request_cancel(self) -> None:
        self._guards.cancelled = True

    def checkpoint(self) -> None:
        """A release point: raise if cancelled, park if the worker is stopping or the
        task's window has closed."""
        self._guards.refuse_transaction("checkpoint", None)
        self._guards.ensure_lease("checkpoint")
        self.release_point()

    def release_point(self) -> None:
        """``checkpoint()`` without its guards: the checks that need no database."""
        self._guards.release_point()

    def step(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` once per execution; later replays return its stored JSON result."""
        recorded = self._guards.begin("step", name, "step")
        if recorded is not None:
            return recorded.result
        if self._watch is None:
            return self._run_step(name, fn, args, kwargs)
        with self._watch.step(name):
            return self._run_step(name, fn, args, kwargs)

    def _run_step(self, name: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        began = time.monotonic()
        try:
            value = fn(*args, **kwargs)
        except Exception as exc:
            self._steps.raised(name, began, exc)
            raise
        return self._steps.returned(name, value, began)

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
        recorded = self._guards.begin(call, name, "sleep")
        if recorded is None:
            record = self._steps.write(name, "sleep", wake_at=wake_at, wake_in=wake_in)
            if record.over:
                return
            when = record.recorded_wake_at
        else:
            when = recorded.wake_at
            if when is None or when <= self._clock.now():
                return
        raise Park(Status.SLEEPING, when)

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
        recorded = self._guards.begin("invoke", step_name, "invoke")
        if recorded is None:
            try:
                deadline = children.start(self._owner(step_name), task, payload, timeout, queue)
            except ExecutionCancelled:
                self._guards.cancelled = True
                raise
            raise Park(Status.WAITING, deadline)
        if recorded.finished:
            if not recorded.error:
                return recorded.result
            raise child_error(step_name, recorded.error, recorded.wake_at)
        if recorded.wake_at is not None and recorded.wake_at <= self._clock.now():
            children.time_out(self._owner(step_name), recorded.wake_at)
        raise Park(Status.WAITING, recorded.wake_at)

    def invoke_all(self, step_name: str, calls: Any, **options: Any) -> list[Any]:
        """Start a child per ``(task, payload)`` together, park until all have ended, and
        return their results in order; or raise the first child's failure once all have
        ended (``timeout`` and ``queue`` as for ``invoke``)."""
        return parallel.invoke_all(
            self._guards, self._owner, self._clock, step_name, calls, **options
        )

    def _owner(self, step_name: str) -> children.Owner:
        return children.Owner(self._conn, self.execution_id, self._claims, step_name)


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
        recorded = self._sync._guards.begin("step", name, "step")
        if recorded is not None:
            return recorded.result
        watch = self._sync._watch
        if watch is None:
            return await self._run_step(name, fn, args, kwargs)
        with watch.step(name):
            return await self._run_step(name, fn, args, kwargs)

    async def _run_step(self, name: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        began = time.monotonic()
        try:
            value = fn(*args, **kwargs)
            if hasattr(value, "__await__"):
                value = await value
        except Exception as exc:
            self._sync._steps.raised(name, began, exc)
            raise
        return self._sync._steps.returned(name, value, began)

    async def sleep(self, name: str, duration: float | timedelta) -> None:
        self._sync.sleep(name, duration)

    async def sleep_until(self, name: str, when: datetime) -> None:
        self._sync.sleep_until(name, when)

    async def invoke(self, step_name: str, task: Task | str, payload: Any = None, **kw: Any) -> Any:
        return self._sync.invoke(step_name, task, payload, **kw)

    async def checkpoint(self) -> None:
        self._sync.checkpoint()

    async def schedule(self, *args: Any, **kwargs: Any) -> None:
        self._sync.schedule(*args, **kwargs)

    async def unschedule(self, task: Task | str, schedule_name: str) -> bool:
        return self._sync.unschedule(task, schedule_name)

    async def invoke_all(self, step_name: str, calls: Any, **options: Any) -> list[Any]:
        return self._sync.invoke_all(step_name, calls, **options)

    async def cancel(self, execution_id: int, reason: str | None = None) -> bool:
        return self._sync.cancel(execution_id, reason)

    async def emit(self, event_name: str, payload: Any = None) -> list[Any]:
        return self._sync.emit(event_name, payload)

    async def wait_for_event(self, step_name: str, event_name: str, **kwargs: Any) -> Any:
        return self._sync.wait_for_event(step_name, event_name, **kwargs)
