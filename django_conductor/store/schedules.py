"""Cron schedules and their ticks. Each schedule that is not paused keeps its next tick as a
pending execution; the unique (task, schedule name, tick) key makes a second execution of a
tick impossible, whoever creates it. Ticks are computed in Python (cronsim) from the
database's now, which these statements return."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from ..statuses import ScheduleKind
from .base import (
    EXECUTION,
    PENDING,
    READY_CHANNEL,
    SCHEDULE,
    Cursor,
    concurrency_key,
    execute,
    one,
    rows,
)

_COLUMNS = "id, task_name, name, expression, timezone, payload::text, kind, paused, next_run_at"


class ScheduleRow(NamedTuple):
    id: int
    task_name: str
    name: str
    expression: str
    timezone: str
    #: JSON text.
    payload: str | None
    kind: str
    paused: bool
    next_run_at: datetime | None
    #: The database's now, as the statement read it.
    now: datetime


INSERT_SCHEDULE = f"""
INSERT INTO {SCHEDULE} (task_name, name, expression, timezone, payload, kind, paused)
VALUES (%(task)s, %(name)s, %(expression)s, %(timezone)s, %(payload)s::jsonb, %(kind)s, false)
ON CONFLICT (task_name, name) DO NOTHING
"""

LOCK_SCHEDULE = f"""
SELECT {_COLUMNS}, now() FROM {SCHEDULE} WHERE task_name = %(task)s AND name = %(name)s
FOR UPDATE
"""


def lock_or_create(
    cursor: Cursor, *, task: str, name: str, expression: str, timezone: str, payload: str, kind: str
) -> ScheduleRow:
    """The schedule's row, locked for the caller's transaction; created (with no tick yet)
    when there is none. Its kind and definition are as stored, which may differ."""
    params = {
        "task": task,
        "name": name,
        "expression": expression,
        "timezone": timezone,
        "payload": payload,
        "kind": kind,
    }
    execute(cursor, INSERT_SCHEDULE, params)
    execute(cursor, LOCK_SCHEDULE, params)
    (row,) = rows(cursor, ScheduleRow)
    return row


def lock_named(cursor: Cursor, task: str, name: str) -> ScheduleRow | None:
    execute(cursor, LOCK_SCHEDULE, {"task": task, "name": name})
    return one(cursor, ScheduleRow)


LOCK_BY_ID = f"SELECT {_COLUMNS}, now() FROM {SCHEDULE} WHERE id = %(id)s FOR UPDATE"


def lock(cursor: Cursor, schedule_id: int) -> ScheduleRow | None:
    execute(cursor, LOCK_BY_ID, {"id": schedule_id})
    return one(cursor, ScheduleRow)


UPDATE_SCHEDULE = f"""
UPDATE {SCHEDULE} SET expression = %(expression)s, timezone = %(timezone)s,
    payload = %(payload)s::jsonb, paused = %(paused)s, next_run_at = %(next_run_at)s,
    updated_at = now()
WHERE id = %(id)s
"""


def update(
    cursor: Cursor,
    schedule_id: int,
    *,
    expression: str,
    timezone: str,
    payload: str,
    paused: bool,
    next_run_at: datetime | None,
) -> None:
    params = {
        "id": schedule_id,
        "expression": expression,
        "timezone": timezone,
        "payload": payload,
        "paused": paused,
        "next_run_at": next_run_at,
    }
    execute(cursor, UPDATE_SCHEDULE, params)


#: A tick's execution, and a notification so that idle workers look again for what is due
#: next. Nothing when the tick has its execution already.
INSERT_TICK = f"""
INSERT INTO {EXECUTION} (task_name, queue, event_name, payload, priority, max_attempts,
                         run_at, scheduled_at, concurrency_key)
SELECT %(task)s, %(queue)s, %(name)s, %(payload)s::jsonb, %(priority)s, %(max_attempts)s,
    %(tick)s, %(tick)s, {concurrency_key("%(limit_key)s::text", "%(payload)s::jsonb")}
FROM (SELECT pg_notify('{READY_CHANNEL}', %(queue)s)) AS notified
ON CONFLICT (task_name, event_name, scheduled_at) WHERE scheduled_at IS NOT NULL DO NOTHING
RETURNING id
"""


class Tick(NamedTuple):
    """What every execution of a schedule's task is made with."""

    task: str
    name: str
    queue: str
    payload: str | None
    priority: int
    max_attempts: int
    #: Its task's concurrency key spec (``Task.limit_key``).
    limit_key: str | None


def insert_tick(cursor: Cursor, tick: Tick, at: datetime) -> int | None:
    """The new execution's id; None when the tick had one."""
    execute(cursor, INSERT_TICK, {**tick._asdict(), "tick": at})
    created = cursor.fetchone()
    return None if created is None else int(created[0])


#: Ticks not begun yet, of a schedule that changes or goes: those still to come only. A tick
#: whose time has passed runs, as do executions made by "run now".
DROP_FUTURE_TICKS = f"""
DELETE FROM {EXECUTION}
WHERE task_name = %(task)s AND event_name = %(name)s AND scheduled_at > now()
    AND status = {PENDING} AND claims = 0
"""


def drop_future_ticks(cursor: Cursor, task: str, name: str) -> None:
    execute(cursor, DROP_FUTURE_TICKS, {"task": task, "name": name})


#: Schedules whose next tick has passed, for the tasks this worker has; locked, skipping any
#: another worker is advancing.
DUE = f"""
SELECT {_COLUMNS}, now() FROM {SCHEDULE}
WHERE NOT paused AND next_run_at <= now() AND task_name = ANY(%(tasks)s::text[])
ORDER BY id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""

DUE_ONE = f"""
SELECT {_COLUMNS}, now() FROM {SCHEDULE}
WHERE task_name = %(task)s AND name = %(name)s AND NOT paused AND next_run_at <= now()
FOR UPDATE SKIP LOCKED
"""


def due(cursor: Cursor, tasks: list[str], limit: int = 100) -> list[ScheduleRow]:
    execute(cursor, DUE, {"tasks": tasks, "limit": limit})
    return rows(cursor, ScheduleRow)


def due_one(cursor: Cursor, task: str, name: str) -> list[ScheduleRow]:
    execute(cursor, DUE_ONE, {"task": task, "name": name})
    return rows(cursor, ScheduleRow)


ADVANCE = f"""
UPDATE {SCHEDULE} SET last_run_at = next_run_at, next_run_at = %(next_run_at)s
WHERE id = %(id)s
"""


def advance(cursor: Cursor, schedule_id: int, next_run_at: datetime) -> None:
    execute(cursor, ADVANCE, {"id": schedule_id, "next_run_at": next_run_at})


#: Static schedules of these tasks that the code no longer has.
DELETE_STALE_STATIC = f"""
DELETE FROM {SCHEDULE} s
WHERE s.kind = %(kind)s AND s.task_name = ANY(%(tasks)s::text[])
    AND NOT EXISTS (
        SELECT FROM unnest(%(keep_tasks)s::text[], %(keep_names)s::text[]) AS k(task, name)
        WHERE k.task = s.task_name AND k.name = s.name
    )
RETURNING s.task_name, s.name
"""


class Named(NamedTuple):
    task_name: str
    name: str


def delete_stale_static(
    cursor: Cursor, tasks: list[str], keep: list[tuple[str, str]]
) -> list[Named]:
    params = {
        "kind": ScheduleKind.STATIC,
        "tasks": tasks,
        "keep_tasks": [task for task, _ in keep],
        "keep_names": [name for _, name in keep],
    }
    execute(cursor, DELETE_STALE_STATIC, params)
    return rows(cursor, Named)


DELETE_SCHEDULE = f"""
DELETE FROM {SCHEDULE} WHERE task_name = %(task)s AND name = %(name)s AND kind = %(kind)s
RETURNING id
"""


def delete(cursor: Cursor, task: str, name: str, kind: str) -> bool:
    execute(cursor, DELETE_SCHEDULE, {"task": task, "name": name, "kind": kind})
    return one(cursor, _Id) is not None


class _Id(NamedTuple):
    id: int
