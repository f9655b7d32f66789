"""Assertions on what was invoked: the executions of a task stored so far, whatever ran
them, matched on their payload as stored (through JSON)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import payloads
from ..models import Execution
from ..registry import registry

if TYPE_CHECKING:
    from ..definition import Task


class _AnyPayload:
    def __repr__(self) -> str:
        return "ANY"


#: The default ``payload``: any payload matches.
ANY: Any = _AnyPayload()


def invoked(task: Task | str, payload: Any = ANY, *, status: str | None = None) -> list[Execution]:
    """The executions of ``task`` (a ``Task`` or its name), oldest first, with this
    ``payload`` (compared as JSON, so a tuple matches the list it was stored as) and
    ``status`` when given."""
    name = registry.get(task).name if isinstance(task, str) else task.name
    found = Execution.objects.filter(task_name=name).order_by("id")
    if status is not None:
        found = found.filter(status=status)
    if payload is ANY:
        return list(found)
    wanted = payloads.loads(payloads.dumps(payload))
    return [execution for execution in found if execution.payload == wanted]


def assert_invoked(
    task: Task | str, payload: Any = ANY, *, count: int | None = None, status: str | None = None
) -> list[Execution]:
    """Fail unless ``task`` was invoked with ``payload`` (``count`` times, when given);
    returns the matching executions."""
    matching = invoked(task, payload, status=status)
    if (count is None and matching) or (count is not None and len(matching) == count):
        return matching
    times = "at least once" if count is None else f"{count} times"
    raise AssertionError(
        f"Expected {_name(task)!r} to be invoked {times}{_with(payload, status)}, but it was "
        f"{len(matching)} times. {_listing(task)}"
    )


def assert_not_invoked(task: Task | str, payload: Any = ANY, *, status: str | None = None) -> None:
    """Fail if ``task`` was invoked with ``payload`` (with any, by default)."""
    matching = invoked(task, payload, status=status)
    if matching:
        raise AssertionError(
            f"Expected {_name(task)!r} not to be invoked{_with(payload, status)}, but it was "
            f"{len(matching)} times. {_listing(task)}"
        )


def _name(task: Task | str) -> str:
    return task if isinstance(task, str) else task.name


def _with(payload: Any, status: str | None) -> str:
    said = "" if payload is ANY else f" with payload {payload!r}"
    return said if status is None else f"{said} and status {status!r}"


def _listing(task: Task | str, shown: int = 10) -> str:
    executions = invoked(task)
    if not executions:
        return "It has no executions."
    lines = [f"#{e.id} {e.status}: {e.payload!r}" for e in executions[:shown]]
    more = len(executions) - shown
    if more > 0:
        lines.append(f"... and {more} more")
    return "Its executions: " + "; ".join(lines)
