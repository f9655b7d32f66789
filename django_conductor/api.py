"""Module-level calls: invoke by name, retry a failed execution, run a waiting one now,
cancel one."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.utils import timezone

from . import payloads
from .cancellation import cancel_tree
from .conf import seconds
from .exceptions import ConductorError, PayloadError
from .handle import ExecutionHandle
from .notify import notify_ready
from .registry import registry
from .retrying import retry_execution
from .schema import tables_required
from .sql import EXECUTION, READY_CHANNEL

if TYPE_CHECKING:
    from .definition import Task

LIVE_PREDICATE = (
    "dedupe_key IS NOT NULL AND NOT superseded "
    "AND status IN ('pending', 'running', 'sleeping', 'waiting')"
)

#: The run time given, or ``delay`` seconds after the statement, as the database tells time
#: (statement_timestamp(), as in the columns' defaults, so a delay counts from the invoke
#: even inside a long transaction).
RUN_AT = (
    "coalesce(%(run_at)s::timestamptz, "
    "statement_timestamp() + make_interval(secs => %(delay)s::float8))"
)

_INSERT_MANY = f"""
WITH ins AS (
    INSERT INTO {EXECUTION} (task_name, queue, payload, priority, run_at, max_attempts)
    SELECT %(task)s, %(queue)s, p::jsonb, %(priority)s, {RUN_AT}, %(max_attempts)s
    FROM unnest(%(payloads)s::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n
    RETURNING id
)
SELECT ins.id FROM ins, (SELECT pg_notify('{READY_CHANNEL}', %(queue)s)) AS notified
"""

_INSERT_ONE = f"""
INSERT INTO {EXECUTION} (task_name, queue, payload, priority, run_at, max_attempts)
VALUES (%(task)s, %(queue)s, %(payload)s::jsonb, %(priority)s, {RUN_AT}, %(max_attempts)s)
RETURNING id, pg_notify('{READY_CHANNEL}', %(queue)s)
"""

_INSERT_DEDUPED = f"""
INSERT INTO {EXECUTION} (task_name, queue, payload, priority, run_at, max_attempts, dedupe_key)
VALUES (%(task)s, %(queue)s, %(payload)s::jsonb, %(priority)s, {RUN_AT}, %(max_attempts)s,
        %(dedupe_key)s)
ON CONFLICT (task_name, queue, dedupe_key) WHERE {LIVE_PREDICATE}
DO UPDATE SET payload = EXCLUDED.payload, run_at = EXCLUDED.run_at, priority = EXCLUDED.priority
WHERE {EXECUTION}.status = 'pending'
RETURNING id
"""

#: statement_timestamp(), as in the columns' defaults: a row written earlier in the same
#: transaction is not mistaken for one that is still waiting.
_RUN_NOW = f"""
UPDATE {EXECUTION} SET run_at = statement_timestamp()
WHERE id = %(id)s AND status = 'pending' AND run_at > statement_timestamp()
RETURNING queue
"""

_SUPERSEDE = f"""
UPDATE {EXECUTION} SET superseded = true
WHERE task_name = %(task)s AND queue = %(queue)s AND dedupe_key = %(dedupe_key)s
    AND {LIVE_PREDICATE}
"""


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
    params: dict[str, Any] = {
        "task": task.name,
        "queue": _queue(queue if queue is not None else task.queue),
        "priority": _priority(priority if priority is not None else task.priority),
        "max_attempts": task.max_attempts,
    }
    params["run_at"], params["delay"] = _run_at(run_at, delay)
    texts = [_payload_text(task.name, item) for item in items]
    if not texts:
        return []
    with tables_required(), connection.cursor() as cursor:
        if dedupe_key is None and len(texts) == 1:
            cursor.execute(_INSERT_ONE, {**params, "payload": texts[0]})
            return [ExecutionHandle(cursor.fetchone()[0])]
        if dedupe_key is None:
            cursor.execute(_INSERT_MANY, {**params, "payloads": texts})
            return [ExecutionHandle(row[0]) for row in cursor.fetchall()]
        params.update(payload=texts[0], dedupe_key=_dedupe_key(dedupe_key))
        with transaction.atomic():
            cursor.execute(_INSERT_DEDUPED, params)
            row = cursor.fetchone()
            if row is None:
                # The live execution with this key already runs: a new one takes the key.
                cursor.execute(_SUPERSEDE, params)
                cursor.execute(_INSERT_DEDUPED, params)
                row = cursor.fetchone()
            notify_ready(cursor, [params["queue"]])
        return [ExecutionHandle(row[0])]


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
        cursor.execute(_RUN_NOW, {"id": execution_id})
        row = cursor.fetchone()
        if row is None:
            return False
        notify_ready(cursor, [row[0]])
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
