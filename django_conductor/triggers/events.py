"""Custom events: ``emit(name, payload)`` starts every task subscribed with
``on_event(name)``, in the caller's transaction, in one statement. Subscriptions are code,
so the emitting process decides who gets the event: ``when`` filters and ``fields`` trims
run there, before anything is stored."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import connection

from .. import eager_switch, payloads
from ..exceptions import ConductorError, PayloadError, error_text
from ..handle import ExecutionHandle
from ..options import checked, name_problem
from ..registry import registry
from ..store import events as store
from ..store.events import Subscriber
from ..store.schema import tables_required
from ..telemetry import producing

#: ``when``: top-level keys the payload must have with these values, or a function of the
#: payload that says whether the task wants it.
When = Mapping[str, Any] | Callable[[Any], bool]


@dataclass(frozen=True)
class OnEvent:
    """A subscription, given in ``task(triggers=[on_event(...)])``."""

    name: str
    when: When | None = None
    fields: tuple[str, ...] | None = None

    def problem(self) -> str | None:
        problem = name_problem(self.name)
        if problem is not None:
            return f"on_event {problem}"
        if self.when is not None and not (callable(self.when) or isinstance(self.when, Mapping)):
            return f"on_event when= must be a dict of payload keys or a function, not {self.when!r}"
        if isinstance(self.when, Mapping):
            try:
                payloads.dumps(dict(self.when))
            except (TypeError, ValueError) as exc:
                return f"on_event when= {payloads.explain(self.when, exc, 'when')}"
        if self.fields is not None and not all(isinstance(f, str) for f in self.fields):
            return f"on_event fields= must be a list of payload keys, not {list(self.fields)!r}"
        return None

    def wants(self, payload: Any, task_name: str) -> bool:
        if self.when is None:
            return True
        if callable(self.when):
            try:
                return bool(self.when(payload))
            except Exception as exc:
                raise ConductorError(
                    f"The when= of task {task_name!r}'s subscription to {self.name!r} raised "
                    f"{error_text(exc)} for this payload, so nothing was emitted: make it "
                    "return False for payloads it does not want."
                ) from exc
        return isinstance(payload, dict) and all(
            key in payload and payload[key] == value for key, value in self.when.items()
        )

    def trim(self, payload: Any) -> Any:
        """The payload as this task gets it: only ``fields``, when given."""
        if self.fields is None:
            return payload
        if not isinstance(payload, dict):
            raise PayloadError(
                f"Event {self.name!r} has a subscriber that takes only the fields "
                f"{list(self.fields)}, so its payload must be a dict, not {payload!r}."
            )
        return {key: payload[key] for key in self.fields if key in payload}


def on_event(name: str, when: When | None = None, fields: Iterable[str] | None = None) -> OnEvent:
    """Start the task for every ``emit(name, payload)``. ``when`` keeps only some events:
    a dict of top-level payload keys and the values they must have (``{"kind": "refund"}``),
    or a function of the payload that returns True for those the task wants. ``fields``
    passes on only these top-level keys. A bad one is system check error E007."""
    return OnEvent(name, when, None if fields is None else tuple(fields))


@producing.emits
@tables_required()
def emit(event_name: str, payload: Any = None) -> list[ExecutionHandle]:
    """Start one execution of each task subscribed to ``event_name`` (whose ``when`` wants
    this payload), and deliver the payload to the executions waiting for the event
    (``ctx.wait_for_event``) whose match it has, in the caller's transaction and in one
    statement;
    the new executions' handles, in task name order. Raises ``ValueError`` for a bad name
    and ``PayloadError`` for a payload that is not JSON: nothing is stored then."""
    checked(name_problem(event_name))
    text = payloads.dumps_or(
        payload,
        lambda why: PayloadError(f"The payload of event {event_name!r} is not JSON: {why}"),
        root="payload",
    )
    subscribers = [
        Subscriber(
            task.name,
            task.queue,
            payloads.dumps(trigger.trim(payload)),
            task.priority,
            task.max_attempts,
            task.limit_key,
        )
        for task, trigger in subscriptions(event_name)
        if trigger.wants(payload, task.name)
    ]
    run = eager_switch.before_enqueue()
    with connection.cursor() as cursor:
        ids = store.emit(cursor, event_name, text, subscribers, producing.carrier())
    eager_switch.after_enqueue(run)  # also for the waits the event ended
    return [ExecutionHandle(execution_id) for execution_id in ids]


def subscriptions(event_name: str) -> list[tuple[Any, OnEvent]]:
    """Each task subscribed to the event, with its subscription (the first, if several)."""
    found = []
    for task in sorted(registry, key=lambda task: task.name):
        for trigger in task.triggers:
            if (
                isinstance(trigger, OnEvent)
                and trigger.name == event_name
                and trigger.problem() is None  # the system checks report a bad one
            ):
                found.append((task, trigger))
                break
    return found
