"""Producer spans: an invoke, an emit or a child invoke traced as messages sent, its trace
context stored with the executions it creates, for their attempts' spans to link to. With
tracing off, each costs a provider look-up and stores nothing."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from . import otel

F = TypeVar("F", bound=Callable[..., Any])


class Sending:
    """The span of one send, current while it lasts; this base sends nothing (tracing off)."""

    #: The trace context to store with the executions created (JSON text), or None.
    carrier: str | None = None

    def __enter__(self) -> Sending:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        return None

    def created(self, ids: Sequence[int]) -> None:
        """The executions this send created, for the span's attributes."""


NOT_TRACED = Sending()


class _Traced(Sending):
    def __init__(self, span: otel.OpenSpan) -> None:
        self._span = span
        stored = otel.current_carrier()
        self.carrier = None if stored is None else json.dumps(stored)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._span.close(error)

    def created(self, ids: Sequence[int]) -> None:
        if len(ids) == 1:
            self._span.set({"messaging.message.id": str(ids[0])})
        else:
            self._span.set({"messaging.batch.message_count": len(ids)})


def sending(operation: str, destination: str, task_name: str | None = None) -> Sending:
    """A producer span named ``<operation> <task or destination>``, when tracing is on."""
    tracer = otel.tracer()
    if tracer is None:
        return NOT_TRACED
    attributes: dict[str, Any] = {
        "messaging.system": otel.SYSTEM,
        "messaging.operation.type": "send",
        "messaging.operation.name": operation,
        "messaging.destination.name": destination,
    }
    if task_name is not None:
        attributes["conductor.task.name"] = task_name
    span = otel.open_span(tracer, f"{operation} {task_name or destination}", "PRODUCER", attributes)
    return NOT_TRACED if span is None else _Traced(span)


def carrier() -> str | None:
    """The current trace context as JSON, to store with executions being created; None
    with tracing off."""
    if otel.tracer() is None:
        return None
    stored = otel.current_carrier()
    return None if stored is None else json.dumps(stored)


def invokes(enqueue: F) -> F:
    """``api.enqueue`` as a producer span ``invoke <task>`` on the task's (or the given)
    queue; the stored trace context is the span's (``carrier()`` inside it)."""

    @functools.wraps(enqueue)
    def traced(task: Any, items: list[Any], **options: Any) -> Any:
        if otel.tracer() is None:
            return enqueue(task, items, **options)
        queue = options.get("queue") or task.queue
        with sending("invoke", queue, task.name) as sent:
            handles = enqueue(task, items, **options)
            sent.created([handle.id for handle in handles])
        return handles

    return traced  # type: ignore[return-value]


def emits(emit: F) -> F:
    """``emit`` as a producer span ``emit <event>``, the event's name its destination."""

    @functools.wraps(emit)
    def traced(event_name: str, payload: Any = None) -> Any:
        if otel.tracer() is None:
            return emit(event_name, payload)
        with sending("emit", event_name) as sent:
            handles = emit(event_name, payload)
            sent.created([handle.id for handle in handles])
        return handles

    return traced  # type: ignore[return-value]
