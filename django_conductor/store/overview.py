"""What the admin's overview page counts, in statements whose cost does not grow with the
table: every one walks a partial index (the backlog, running, failed and cancelled ones, what
finished in the last hour) or stops at a cap.

Time is ``statement_timestamp()``, as in the columns' defaults, so that what was written
earlier in the same transaction is seen as already due."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from ..statuses import Status
from .base import (
    CLAIMABLE,
    COMPLETED,
    EXECUTION,
    RUNNING,
    Cursor,
    execute,
    literal,
    literals,
    one,
    rows,
)

#: One capped count per status, each with the status as a literal so that the planner can
#: pick the partial index that holds it (claimable, running, failed or cancelled).
BY_STATUS = "SELECT " + ", ".join(
    f"(SELECT count(*) FROM (SELECT 1 FROM {EXECUTION} WHERE status = {literal(status)} "
    f"LIMIT %({status.value})s) capped)"
    for status in Status
)

#: Rows per status as the planner estimates them from the last ANALYZE: the table's row
#: estimate times each status's share among its most common values.
ESTIMATES = f"""
SELECT v.status, (c.reltuples * v.share)::bigint
FROM pg_class c
JOIN pg_stats s ON s.schemaname = current_schema() AND s.tablename = c.relname
    AND s.attname = 'status'
CROSS JOIN LATERAL unnest(s.most_common_vals::text::text[], s.most_common_freqs)
    AS v(status, share)
WHERE c.oid = '{EXECUTION}'::regclass AND c.reltuples > 0
"""

_UNHAPPY = literals((Status.FAILED, Status.CANCELLED))

#: Three parts, one per partial index: claimable, running, failed or cancelled.
BY_TASK = f"""
SELECT task_name, status, count(*) FROM (
    (SELECT task_name, status FROM {EXECUTION} WHERE status IN {CLAIMABLE} LIMIT %(cap)s)
    UNION ALL
    (SELECT task_name, status FROM {EXECUTION} WHERE status = {RUNNING} LIMIT %(cap)s)
    UNION ALL
    (SELECT task_name, status FROM {EXECUTION} WHERE status IN {_UNHAPPY} LIMIT %(cap)s)
) unfinished GROUP BY task_name, status
UNION ALL
SELECT task_name, 'completed_last_hour', count(*) FROM {EXECUTION}
WHERE finished_at > statement_timestamp() - make_interval(mins => %(minutes)s)
    AND status = {COMPLETED}
GROUP BY task_name
"""

BACKLOG = f"""
SELECT queue, count(*) FROM (
    SELECT queue FROM {EXECUTION}
    WHERE status IN {CLAIMABLE} AND run_at <= statement_timestamp() LIMIT %(cap)s
) ready GROUP BY queue ORDER BY queue
"""

OLDEST_READY = f"""
SELECT id, task_name, queue, run_at FROM {EXECUTION}
WHERE status IN {CLAIMABLE} AND run_at <= statement_timestamp() ORDER BY run_at LIMIT 1
"""

THROUGHPUT = f"""
SELECT least(floor(extract(epoch FROM statement_timestamp() - finished_at) / 60)::int,
             %(minutes)s - 1),
       status, count(*)
FROM {EXECUTION}
WHERE finished_at > statement_timestamp() - make_interval(mins => %(minutes)s)
GROUP BY 1, 2
"""

RUNNING_BY_WORKER = f"""
SELECT lease_owner, count(*) FROM {EXECUTION} WHERE status = {RUNNING} GROUP BY lease_owner
"""


def by_status(cursor: Cursor, caps: dict[str, int]) -> dict[str, int]:
    """A count per status, each stopping at its cap."""
    execute(cursor, BY_STATUS, caps)
    return dict(zip([status.value for status in Status], cursor.fetchone(), strict=True))


class Estimate(NamedTuple):
    status: str
    rows: int


def estimates(cursor: Cursor) -> list[Estimate]:
    execute(cursor, ESTIMATES)
    return rows(cursor, Estimate)


class TaskCell(NamedTuple):
    task_name: str
    #: A status, or ``completed_last_hour``.
    column: str
    executions: int


def by_task(cursor: Cursor, cap: int, minutes: int) -> list[TaskCell]:
    execute(cursor, BY_TASK, {"cap": cap, "minutes": minutes})
    return rows(cursor, TaskCell)


class Backlog(NamedTuple):
    queue: str
    ready: int


def backlog(cursor: Cursor, cap: int) -> list[Backlog]:
    execute(cursor, BACKLOG, {"cap": cap})
    return rows(cursor, Backlog)


class OldestReady(NamedTuple):
    id: int
    task_name: str
    queue: str
    run_at: datetime


def oldest_ready(cursor: Cursor) -> OldestReady | None:
    execute(cursor, OLDEST_READY)
    return one(cursor, OldestReady)


class Finished(NamedTuple):
    minutes_ago: int
    status: str
    executions: int


def throughput(cursor: Cursor, minutes: int) -> list[Finished]:
    execute(cursor, THROUGHPUT, {"minutes": minutes})
    return rows(cursor, Finished)


class Running(NamedTuple):
    worker_id: str | None
    executions: int


def running_by_worker(cursor: Cursor | Any) -> list[Running]:
    execute(cursor, RUNNING_BY_WORKER)
    return rows(cursor, Running)
