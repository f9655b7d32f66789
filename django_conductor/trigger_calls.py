"""The ``ctx`` calls that reach other work: scheduling, emitting and cancelling (each recorded
as a step, so that a replay does none of it again), and waiting for an event. A mixin of
``Context``."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import api, children, event_waits
from .call_guards import CallGuards
from .clock import DatabaseClock
from .conf import seconds
from .handle import ExecutionHandle
from .replay import Park
from .statuses import Status
from .triggers import events, schedules

if TYPE_CHECKING:
    from .definition import Task


class TriggerCalls:
    _guards: CallGuards
    _clock: DatabaseClock

    def step(self, name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError  # Context's

    def _owner(self, step_name: str) -> children.Owner:
        raise NotImplementedError  # Context's

    def wait_for_event(
        self,
        step_name: str,
        event_name: str,
        *,
        match: dict[str, Any] | None = None,
        timeout: float | timedelta | None = None,
    ) -> Any:
        """Park, holding no worker, until ``emit(event_name, payload)`` with a payload that
        has ``match``'s top-level values (any payload, when None); return that payload.
        Only events emitted after the wait began count. With ``timeout``, raises
        ``EventTimeout`` once it passes, on this run and every replay."""
        match_json = event_waits.match_text(event_name, match)
        recorded = self._guards.begin("wait_for_event", step_name, "event")
        owner = self._owner(step_name)
        if recorded is None:
            event_waits.start(
                owner, event_name, match_json, None if timeout is None else seconds(timeout)
            )
        if recorded.finished:
            if recorded.error:
                raise event_waits.timeout_error(step_name, recorded.wake_at)
            return recorded.result
        if recorded.wake_at is not None and recorded.wake_at <= self._clock.now():
            event_waits.time_out(owner, recorded.wake_at)
        raise Park(Status.WAITING, recorded.wake_at)

    def schedule(
        self, task: Task | str, schedule_name: str, cron: str, payload: Any = None, **tz: Any
    ) -> None:
        """``django_conductor.schedule()``, as a step: a replay does not schedule again."""
        call = (schedules.schedule, task, schedule_name, cron, payload)
        self.step(_step_name("schedule", task, schedule_name), *call, **tz)

    def unschedule(self, task: Task | str, schedule_name: str) -> bool:
        """``django_conductor.unschedule()``, as a step."""
        call = (schedules.unschedule, task, schedule_name)
        return bool(self.step(_step_name("unschedule", task, schedule_name), *call))

    def cancel(self, execution_id: int, reason: str | None = None) -> bool:
        """``django_conductor.cancel()``, as a step named ``cancel #<id>``."""
        return bool(self.step(f"cancel #{execution_id}", _cancel, execution_id, reason))

    def emit(self, event_name: str, payload: Any = None) -> list[ExecutionHandle]:
        """``django_conductor.emit()``, as a step named ``emit '<event>'`` (``#2``, ``#3``
        for the same event emitted again in one run)."""
        emitted: Counter[str] = self.__dict__.setdefault("_emitted", Counter())
        emitted[event_name] += 1
        count = emitted[event_name]
        name = f"emit {event_name!r}" + (f" #{count}" if count > 1 else "")
        ids = self.step(name[:200], _emit_ids, event_name, payload)
        return [ExecutionHandle(execution_id) for execution_id in ids]


def _cancel(execution_id: int, reason: str | None) -> bool:
    return api.cancel(execution_id, reason) if reason is not None else api.cancel(execution_id)


def _emit_ids(event_name: str, payload: Any) -> list[int]:
    return [handle.id for handle in events.emit(event_name, payload)]


def _step_name(call: str, task: Task | str, schedule_name: str) -> str:
    task_name = task if isinstance(task, str) else task.name
    return f"{call} {schedule_name!r} of {task_name}"[:200]
