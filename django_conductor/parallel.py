"""``ctx.invoke_all``: start several children together and park until every one has ended;
their results in order, or, once all have ended, the first failure among them. Each child is
an invoke step of its own (``name[0]``, ``name[1]``...), so a replay starts only those not
started yet, and the parent is woken once, when its last open child ends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import children
from .call_guards import CallGuards
from .clock import DatabaseClock
from .exceptions import ChildExecutionFailed, ChildExecutionTimeout, child_error
from .replay import Park
from .statuses import Status

if TYPE_CHECKING:
    from .definition import Task


def invoke_all(
    guards: CallGuards,
    owner: Callable[[str], children.Owner],
    clock: DatabaseClock,
    step_name: str,
    calls: Sequence[tuple[Task | str, Any]],
    *,
    timeout: float | timedelta | None = None,
    queue: str | None = None,
) -> list[Any]:
    if isinstance(calls, str | bytes) or not all(
        isinstance(call, tuple) and len(call) == 2 for call in calls
    ):
        raise ValueError(f"invoke_all takes a list of (task, payload) pairs, not {calls!r}")
    results: list[Any] = [None] * len(calls)
    deadlines: list[datetime | None] = []
    failure: ChildExecutionFailed | ChildExecutionTimeout | None = None
    replay = False
    for index, (task, payload) in enumerate(calls):
        name = f"{step_name}[{index}]"
        recorded = guards.begin("invoke_all", name, "invoke")
        if recorded is None:
            deadlines.append(children.start(owner(name), task, payload, timeout, queue))
        elif recorded.finished and not recorded.error:
            results[index] = recorded.result
        elif recorded.finished:
            failure = failure or child_error(name, recorded.error, recorded.wake_at, among=True)
        elif recorded.wake_at is not None and recorded.wake_at <= clock.now():
            if children.record_timeout(owner(name)):
                reason = children.timeout_reason(name)
                failure = failure or child_error(name, reason, recorded.wake_at)
            else:
                replay = True  # the child's end came first: read it on a replay
        else:
            deadlines.append(recorded.wake_at)
    if replay:
        raise Park(Status.PENDING, run_in=0.0)
    if deadlines:
        timed = [deadline for deadline in deadlines if deadline is not None]
        raise Park(Status.WAITING, min(timed) if timed else None)
    if failure is not None:
        raise failure
    return results
