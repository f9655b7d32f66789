"""Module-level calls: invoke by name, retry a failed execution, run a waiting one now,
cancel one."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.utils import timezone

from . import payloads
from .conf import seconds
from .exceptions import ConductorError, PayloadError
from .handle import ExecutionHandle
from .registry import registry
from .retrying import retry_execution
from .store import executions
from .store.notify import notify_ready
from .store.schema import tables_required
from .store.trees import cancel_tree

if TYPE_CHECKING:
    from .definition import Task


def enqueue(
    task: Task,
    items: list[Any],
    *,
    dedupe_key: str | None = None,
    priority: int | None = None,
    run_at: datetime | None = None,
    delay: float | timedelta | None = None,
    queue: str | None = None,
) -> list[ExecutionHandle]:
    """Insert executions in the caller's transaction; nothing is stored on bad input."""
    if not task.invocable:
        raise ConductorError(f"Task {task.name!r} is not invocable; it runs from its triggers.")
    run_at, delay = _run_at(run_at, delay)
    invocation = executions.Invocation(
        task=task.name,
        queue=_queue(queue if queue is not None else task.queue),
        priority=_priority(priority if priority is not None else task.priority),
        max_attempts=task.max_attempts,
        run_at=run_at,
        delay=delay,
    )
    texts = [_payload_text(task.name, item) for item in items]
    if not texts:
        return []
    with tables_required(), connection.cursor() as cursor:
        if dedupe_key is None and len(texts) == 1:
            return [ExecutionHandle(executions.insert_one(cursor, invocation, texts[0]))]
        if dedupe_key is None:
            ids = executions.insert_many(cursor, invocation, texts)
            return [ExecutionHandle(execution_id) for execution_id in ids]
        key = _dedupe_key(dedupe_key)
        with transaction.atomic():
            execution_id = executions.insert_deduped(cursor, invocation, texts[0], key)
            notify_ready(cursor, [invocation.queue])
        return [ExecutionHandle(execution_id)]


def invoke(task_name: str, payload: Any = None, **options: Any) -> ExecutionHandle:
    """``Task.invoke`` by registered name; raises ``UnknownTask`` for an unknown one."""
    return registry.get(task_name).invoke(payload, **options)


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


def _payload_text(task_name: str, payload: Any) -> str:
    return payloads.dumps_or(
        payload,
        lambda why: PayloadError(f"The payload for {task_name!r} is not JSON: {why}"),
        root="payload",
    )


def _queue(queue: object) -> str:
    if not isinstance(queue, str) or not queue.strip() or len(queue) > 100:
        raise ValueError(f"queue must be a non-empty string of at most 100 characters: {queue!r}")
    return queue


def _priority(priority: object) -> int:
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise ValueError(f"priority must be an integer, not {priority!r}")
    return priority


def _dedupe_key(key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > 200:
        raise ValueError(
            f"dedupe_key must be a non-empty string of at most 200 characters: {key!r}"
        )
    return key


def _run_at(
    run_at: datetime | None, delay: float | timedelta | None
) -> tuple[datetime | None, float]:
    """The absolute run time, or else the delay in seconds for the database to add."""
    if run_at is not None and delay is not None:
        raise ValueError("Pass run_at or delay, not both.")
    if delay is not None:
        if isinstance(delay, bool) or not isinstance(delay, int | float | timedelta):
            raise ValueError(f"delay must be seconds or a timedelta, not {delay!r}")
        return None, seconds(delay)
    if run_at is not None:
        if not isinstance(run_at, datetime):
            raise ValueError(f"run_at must be a datetime, not {run_at!r}")
        if timezone.is_naive(run_at):
            raise ValueError(f"run_at must be timezone-aware, not the naive {run_at!r}")
    return run_at, 0.0
