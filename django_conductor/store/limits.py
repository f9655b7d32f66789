"""Concurrency limits in the database: the ones the code defines, written by a starting
worker, and which of a worker's tasks have one. A batch task is stored with no limit, as a
task claimed on its own path. A task whose limit, key or path changed has its unfinished
executions keyed anew, so that its claims find them all from then on."""

from __future__ import annotations

from typing import NamedTuple

from .base import EXECUTION, LIMIT, LIVE, Cursor, concurrency_key, execute, rows

#: Limits the code defines, written where they differ; returns the tasks changed.
PUT_LIMITS = f"""
INSERT INTO {LIMIT} (task_name, concurrency, key)
SELECT * FROM unnest(%(tasks)s::text[], %(limits)s::int[], %(keys)s::text[])
ON CONFLICT (task_name) DO UPDATE
SET concurrency = EXCLUDED.concurrency, key = EXCLUDED.key, updated_at = now()
WHERE ({LIMIT}.concurrency, {LIMIT}.key) IS DISTINCT FROM (EXCLUDED.concurrency, EXCLUDED.key)
RETURNING task_name, key
"""

#: Limits the code no longer defines, for tasks it has; returns the tasks changed.
DROP_LIMITS = f"""
DELETE FROM {LIMIT} WHERE task_name = ANY(%(tasks)s::text[])
RETURNING task_name, NULL::text AS key
"""

#: A changed task's unfinished executions, keyed by its new spec (NULL: no limit). Reads
#: every unfinished execution of the task once, at the start that changes its limit.
REKEY = f"""
UPDATE {EXECUTION}
SET concurrency_key = {concurrency_key("%(key)s::text", "payload")}
WHERE task_name = %(task)s AND status IN {LIVE}
    AND concurrency_key IS DISTINCT FROM {concurrency_key("%(key)s::text", "payload")}
"""


class Changed(NamedTuple):
    task_name: str
    #: Its new key spec; None when it is claimed with the rest now.
    key: str | None


class Defined(NamedTuple):
    """A task's limit as its code defines it."""

    task_name: str
    #: None with no limit (a batch task has a key and no limit).
    concurrency: int | None
    #: ``Task.limit_key``: None for a task claimed with the rest.
    key: str | None


STORED = f"SELECT task_name, concurrency, key FROM {LIMIT} WHERE task_name = ANY(%(tasks)s)"


def put_limits(cursor: Cursor, defined: list[Defined]) -> list[Changed]:
    """Store the limits of ``defined``; key anew the executions of those that changed.
    Limits stored as defined are only read, not written: a start never waits on a claim
    that holds them."""
    execute(cursor, STORED, {"tasks": [d.task_name for d in defined]})
    stored = {row.task_name: row for row in rows(cursor, Defined)}
    defined = [d for d in defined if stored.get(d.task_name) != (d if d.key is not None else None)]
    limited = [d for d in defined if d.key is not None]
    execute(
        cursor,
        PUT_LIMITS,
        {
            "tasks": [d.task_name for d in limited],
            "limits": [d.concurrency for d in limited],
            "keys": [d.key for d in limited],
        },
    )
    changed = rows(cursor, Changed)
    unlimited = [d.task_name for d in defined if d.key is None]
    execute(cursor, DROP_LIMITS, {"tasks": unlimited})
    changed += rows(cursor, Changed)
    for task in changed:
        execute(cursor, REKEY, {"task": task.task_name, "key": task.key})
    return changed
