"""Module-level calls: invoke by name, retry a failed execution, run a waiting one now,
cancel one."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, overload

from django.db import connection, transaction

from . import eager_switch, payloads
from .conf import seconds
from .exceptions import ConductorError, PayloadError
from .handle import ExecutionHandle
from .options import (
    checked,
    dedupe_key_problem,
    delay_problem,
    priority_problem,
    queue_problem,
    run_at_problem,
    slot_problem,
)
from .registry import registry
from .retrying import retry_execution
from .store import executions
from .store.base import binding_cursor
from .store.notify import notify_ready
from .store.schema import tables_required
from .store.trees import cancel_tree
from .telemetry import producing

if TYPE_CHECKING:
    from .definition import Task


@producing.invokes
def enqueue(task: Task, items: list[Any], **options: Any) -> list[ExecutionHandle]:
    """Store executions (``_store``); in eager mode, run them at once (``eager_switch``)."""
    run = eager_switch.before_enqueue()
    handles = _store(task, items, **options)
    if handles:
        eager_switch.after_enqueue(run)
    return handles


def _store(
    task: Task,
    items: list[Any],
    *,
    dedupe_key: str | None = None,
    priority: int | None = None,
    run_at: datetime | None = None,
    delay: float | timedelta | None = None,
    throttle: float | timedelta | None = None,
    debounce: float | timedelta | None = None,
    queue: str | None = None,
) -> list[ExecutionHandle]:
    """Insert executions in the caller's transaction; nothing is stored on bad input. With
    ``throttle`` or ``debounce`` the dedupe key (if any) names the slot's partition."""
    if not task.invocable:
        raise ConductorError(f"Task {task.name!r} is not invocable; it runs from its triggers.")
    queue = queue if queue is not None else task.queue
    priority = priority if priority is not None else task.priority
    for problem in (
        queue_problem(queue),
        priority_problem(priority),
        run_at_problem(run_at, delay),
        delay_problem(delay),
        None if dedupe_key is None else dedupe_key_problem(dedupe_key),
        slot_problem("throttle", throttle),
        slot_problem("debounce", debounce),
        flow_problem(len(items), run_at, delay, throttle, debounce),
    ):
        checked(problem)
    invocation = executions.Invocation(
        task=task.name,
        queue=queue,
        priority=priority,
        max_attempts=task.max_attempts,
        # An absolute run time, or else the delay in seconds for the database to add.
        run_at=run_at,
        delay=0.0 if delay is None else seconds(delay),
        limit_key=task.limit_key,
        trace_context=producing.carrier(),
    )
    texts = [_payload_text(task.name, item) for item in items]
    if not texts:
        return []
    if dedupe_key is None and throttle is None and debounce is None and len(texts) == 1:
        with tables_required(), binding_cursor() as cursor:
            return [ExecutionHandle(executions.insert_one(cursor, invocation, texts[0]))]
    with tables_required(), connection.cursor() as cursor:
        key = dedupe_key or ""
        if throttle is not None:
            ids = executions.insert_throttled(cursor, invocation, texts, key, seconds(throttle))
            return [ExecutionHandle(execution_id) for execution_id in ids]
        if debounce is not None:
            with transaction.atomic():
                execution_id = executions.insert_debounced(
                    cursor, invocation, texts[0], key, seconds(debounce)
                )
            return [ExecutionHandle(execution_id)]
        if dedupe_key is None:
            ids = executions.insert_many(cursor, invocation, texts)
            return [ExecutionHandle(execution_id) for execution_id in ids]
        with transaction.atomic():
            execution_id = executions.insert_deduped(cursor, invocation, texts[0], dedupe_key)
            notify_ready(cursor, [invocation.queue])
        return [ExecutionHandle(execution_id)]


@overload
def invoke(
    task_name: str, payload: Any = None, *, throttle: None = None, **options: Any
) -> ExecutionHandle: ...


@overload
def invoke(
    task_name: str, payload: Any = None, *, throttle: float | timedelta, **options: Any
) -> ExecutionHandle | None: ...


def invoke(task_name: str, payload: Any = None, **options: Any) -> ExecutionHandle | None:
    """``Task.invoke`` by registered name; raises ``UnknownTask`` for an unknown one. With
    ``throttle``, None when the slot's first call was another."""
    handle: ExecutionHandle | None = registry.get(task_name).invoke(payload, **options)
    return handle


@tables_required()
def retry(execution_id: int) -> bool:
    """Put a failed (or cancelled) execution back to pending with a fresh attempt budget.

    Completed steps are kept, so side effects already done are not repeated, and so is every
    child outcome the execution survived. Only the invoke step whose failure failed it is
    reset, and its child retried; so are the children it was still waiting on when it was
    cancelled. Returns False when the execution is not failed or cancelled.
    """
    return retry_execution(execution_id)


@tables_required()
def run_now(execution_id: int) -> bool:
    """Make a pending execution that waits out a retry backoff or a delay due at once.

    Its attempts, steps and priority stay as they are; idle workers are woken. Returns False
    when it is not pending or is already due.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        queue = executions.run_now(cursor, execution_id)
        if queue is None:
            return False
        notify_ready(cursor, [queue])
    return True


@tables_required()
def cancel(execution_id: int, reason: str = "Cancelled by user") -> bool:
    """Cancel an execution and its unfinished children.

    Pending, sleeping and waiting ones are cancelled at once; a running one at its next step
    or checkpoint. Returns False when there was nothing left to cancel.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        return cancel_tree(cursor, execution_id, reason)


def flow_problem(
    count: int,
    run_at: datetime | None,
    delay: float | timedelta | None,
    throttle: float | timedelta | None,
    debounce: float | timedelta | None,
) -> str | None:
    """The combinations throttle and debounce refuse."""
    if throttle is not None and debounce is not None:
        return "Pass throttle or debounce, not both."
    if debounce is not None and (run_at is not None or delay is not None):
        return "debounce runs the call at the next slot's start: pass no run_at or delay with it."
    if debounce is not None and count != 1:
        return "invoke_many takes no debounce: a slot keeps one call, so invoke() once."
    return None


def _payload_text(task_name: str, payload: Any) -> str:
    return payloads.dumps_or(
        payload,
        lambda why: PayloadError(f"The payload for {task_name!r} is not JSON: {why}"),
        root="payload",
    )
