"""Claiming for batch tasks: a batch of a task's ready executions for each idle thread,
taken only when full or once the first has waited its task's wait; and when the next batch
is due. Their rows are keyed '' and read from conductor_claimable_limited."""

from __future__ import annotations

from typing import Any, NamedTuple

import psycopg

from .base import EXECUTION, execute, one, rows
from .claims import CLAIMABLE_WHERE, TAKE, ClaimRow, NextDue

#: Batches of a batch task's executions, read from conductor_claimable_limited (its rows
#: are keyed ''): up to ``batches`` times ``size`` ready ones in claim order. Only whole
#: batches are taken until the first has waited ``wait`` seconds since it became ready; then
#: the last may be short. A row not taken is unlocked as the statement ends. All start now.
_CLAIM_BATCHED = f"""
WITH ready AS (
    SELECT id, run_at, row_number() OVER () AS place FROM (
        SELECT id, run_at FROM {EXECUTION}
        WHERE {CLAIMABLE_WHERE} AND concurrency_key IS NOT NULL AND task_name = %(task)s
            AND run_at <= now() {{queue_filter}}
        ORDER BY priority DESC, run_at, id
        LIMIT %(size)s * %(batches)s
        FOR UPDATE SKIP LOCKED
    ) r
), taken AS (
    SELECT CASE WHEN min(run_at) <= now() - make_interval(secs => %(wait)s) THEN count(*)
                ELSE count(*) / %(size)s * %(size)s END AS n
    FROM ready
), picked AS (
    SELECT id, place FROM ready, taken WHERE place <= taken.n
), {TAKE}"""
CLAIM_BATCHED_ANY_QUEUE = _CLAIM_BATCHED.format(queue_filter="")
CLAIM_BATCHED_QUEUES = _CLAIM_BATCHED.format(queue_filter="AND queue = ANY(%(queues)s::text[])")


def claim_batched(
    cursor: psycopg.Cursor[Any],
    *,
    task: str,
    size: int,
    wait: float,
    batches: int,
    worker: str,
    lease: float,
    queues: list[str],
) -> list[ClaimRow]:
    """Claim up to ``batches`` batches of ``task``'s executions, in claim order, none while
    the first has not filled and has waited less than ``wait``; each to start now."""
    params = {
        "task": task,
        "size": size,
        "wait": wait,
        "batches": batches,
        "start": size * batches,
        "worker": worker,
        "lease": lease,
        "queues": queues,
    }
    statement = CLAIM_BATCHED_QUEUES if queues else CLAIM_BATCHED_ANY_QUEUE
    execute(cursor, statement, params, prepare=True)
    return rows(cursor, ClaimRow)


#: Seconds until the next batch of any of these batch tasks may be claimed: its first
#: executions in claim order, ready or not, plus its wait. Negative when one is claimable.
_BATCH_DUE = f"""
SELECT extract(epoch FROM min(first.run_at + make_interval(secs => t.wait)) - now())
FROM unnest(%(tasks)s::text[], %(sizes)s::int[], %(waits)s::float8[]) AS t(task_name, size, wait)
CROSS JOIN LATERAL (
    SELECT min(run_at) AS run_at FROM (
        SELECT run_at FROM {EXECUTION}
        WHERE {CLAIMABLE_WHERE} AND concurrency_key IS NOT NULL AND task_name = t.task_name
            {{queue_filter}}
        ORDER BY priority DESC, run_at, id
        LIMIT t.size
    ) f
) first
"""
BATCH_DUE_ANY_QUEUE = _BATCH_DUE.format(queue_filter="")
BATCH_DUE_QUEUES = _BATCH_DUE.format(queue_filter="AND queue = ANY(%(queues)s::text[])")


class Batched(NamedTuple):
    """A batch task as its claims need it."""

    task_name: str
    size: int
    #: Seconds the first ready execution may wait for its batch to fill.
    wait: float


def batch_due(
    cursor: psycopg.Cursor[Any], batched: list[Batched], *, queues: list[str]
) -> float | None:
    """Seconds until a batch of ``batched`` is due (0 or less: now); None when none has
    executions waiting."""
    params = {
        "tasks": [b.task_name for b in batched],
        "sizes": [b.size for b in batched],
        "waits": [b.wait for b in batched],
        "queues": queues,
    }
    execute(cursor, BATCH_DUE_QUEUES if queues else BATCH_DUE_ANY_QUEUE, params, prepare=True)
    due = one(cursor, NextDue)
    return None if due is None or due.seconds is None else float(due.seconds)
