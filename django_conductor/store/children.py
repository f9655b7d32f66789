"""Child executions, as ``ctx.invoke`` starts them: a statement fenced on the parent's claim,
so that a parent that lost its lease starts no child (``store.steps.time_out_step`` records
a child's timeout)."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import psycopg

from .base import EXECUTION, RUNNING, STEP, concurrency_key, execute, one, ready_channel

#: Create a child execution and the parent's step that waits for it, in one statement;
#: the unique (parent, parent_step) pair makes a replay unable to create a second child.
#: A parent with a cancel requested gets no child: a cancel that committed first would not
#: reach it. Returns (cancel requested, step created, the deadline ``timeout`` seconds from
#: the database's now, NULL for none), or nothing when the claim lost the execution.
START_CHILD = f"""
WITH owner AS (
    SELECT id, attempts + prefetched::int AS attempts,
        cancel_requested_at IS NOT NULL AS cancelling FROM {EXECUTION}
    WHERE id = %(id)s AND claims = %(claims)s AND status = {RUNNING}
    FOR SHARE
), child AS (
    INSERT INTO {EXECUTION} (task_name, queue, payload, priority, max_attempts, parent_id,
                             parent_step, concurrency_key, trace_context)
    SELECT %(task_name)s, %(queue)s, %(payload)s::jsonb, %(priority)s, %(max_attempts)s,
           owner.id, %(name)s, {concurrency_key("%(limit_key)s::text", "%(payload)s::jsonb")},
           %(trace_context)s::jsonb
    FROM owner WHERE NOT owner.cancelling
    ON CONFLICT (parent_id, parent_step) WHERE parent_id IS NOT NULL
    DO UPDATE SET parent_step = EXCLUDED.parent_step
    RETURNING id, queue
), step AS (
    INSERT INTO {STEP} (execution_id, name, kind, attempt, started_at, wake_at, child_id)
    SELECT owner.id, %(name)s, 'invoke', owner.attempts, now(),
        now() + make_interval(secs => %(timeout)s::float8), child.id
    FROM owner, child
    ON CONFLICT (execution_id, name) DO NOTHING
    RETURNING wake_at, pg_notify(%(channel)s, %(queue)s)
)
SELECT owner.cancelling, EXISTS (SELECT FROM step), (SELECT wake_at FROM step),
    (SELECT id FROM child) FROM owner
"""


class ChildStarted(NamedTuple):
    #: The parent has a cancel requested: no child was started.
    cancelling: bool
    #: The step that waits for the child was created now (not on an earlier attempt).
    step_created: bool
    #: The child's deadline, by the database's clock; None for no timeout.
    deadline: datetime | None
    #: The child's id; None when none was started.
    child_id: int | None


def start_child(
    cursor: psycopg.Cursor,
    *,
    parent_id: int,
    claims: int,
    step_name: str,
    task_name: str,
    queue: str,
    payload: str,
    priority: int,
    max_attempts: int,
    limit_key: str | None,
    timeout: float | None,
    trace_context: str | None = None,
) -> ChildStarted | None:
    """None when the parent's claim lost the execution; ``trace_context`` (JSON) is the
    invoke's, for the child's attempts' spans."""
    params = {
        "id": parent_id,
        "claims": claims,
        "name": step_name,
        "task_name": task_name,
        "queue": queue,
        "payload": payload,
        "priority": priority,
        "max_attempts": max_attempts,
        "limit_key": limit_key,
        "channel": ready_channel(limit_key),
        "timeout": timeout,
        "trace_context": trace_context,
    }
    execute(cursor, START_CHILD, params)
    return one(cursor, ChildStarted)
