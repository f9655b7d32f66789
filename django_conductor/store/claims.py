"""Claiming: lock a batch of ready executions under a lease, with their recorded steps; and,
with nothing ready, how long until something is due."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import psycopg

from .base import CLAIMABLE, EXECUTION, RUNNING, STEP, execute, one, rows

#: A recorded step as ``replay.RecordedStep.from_row`` reads it, by name.
STEP_ROW = (
    "json_build_object('name', s.name, 'kind', s.kind, 'result', s.result, 'error', s.error, "
    "'finished', s.finished_at IS NOT NULL, 'wake_at', s.wake_at, 'child_id', s.child_id)"
)

_CLAIMABLE = f"status IN {CLAIMABLE}"

#: The priorities that have claimable executions, highest first, one probe of
#: conductor_claimable each. A claim, or the search for the next due time, then reads each
#: level as one range of that index starting at its ready (or next due) end, so parked work
#: at a higher priority (sleeping, delayed, backing off, waiting) is never read through:
#: their cost does not grow with parked work.
_LEVELS = f"""
levels(priority) AS (
    (SELECT priority FROM {EXECUTION} WHERE {_CLAIMABLE} ORDER BY priority DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT e.priority FROM {EXECUTION} e
            WHERE e.{_CLAIMABLE} AND e.priority < l.priority ORDER BY e.priority DESC LIMIT 1)
    FROM levels l WHERE l.priority IS NOT NULL
)"""

_CLAIM = f"""
WITH RECURSIVE {_LEVELS}, picked AS (
    -- No ORDER BY: the lateral join is a nested loop over the levels in the order the walk
    -- makes them, highest first, each level's rows in claim order; so the LIMIT stops the
    -- walk, and locks no row it does not claim, as soon as it has enough.
    SELECT ready.id, row_number() OVER () AS place FROM levels CROSS JOIN LATERAL (
        SELECT id FROM {EXECUTION}
        WHERE {_CLAIMABLE} AND priority = levels.priority AND run_at <= now() {{queue_filter}}
            -- Only tasks this worker has: in a rolling deploy, the others wait for a
            -- worker that has them, instead of failing here for want of a handler.
            AND task_name = ANY(%(tasks)s::text[])
        ORDER BY priority DESC, run_at, id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) ready
    WHERE levels.priority IS NOT NULL
    LIMIT %(limit)s
), claimed AS (
    -- The first ``start``, for the threads that are free now, count their attempt here; the
    -- rest are held ahead of a thread (prefetched) and their attempt is counted by its
    -- outcome, so that a worker killed while holding them costs them nothing. One with a
    -- claim lost that way (count_at_claim, until an attempt ends) counts here whatever its
    -- place: an execution whose handler kills its worker still runs out of attempts.
    UPDATE {EXECUTION} e
    SET status = {RUNNING}, claims = e.claims + 1,
        attempts = e.attempts + (picked.place <= %(start)s OR e.count_at_claim)::int,
        prefetched = picked.place > %(start)s AND NOT e.count_at_claim,
        lease_owner = %(worker)s, lease_expires_at = now() + make_interval(secs => %(lease)s),
        started_at = coalesce(e.started_at, now()), wake_pending = false
    FROM picked WHERE e.id = picked.id
    RETURNING e.id, e.task_name, e.queue, e.event_name, e.payload::text, e.attempts,
        e.max_attempts, e.claims, e.cancel_requested_at IS NOT NULL AS cancel_requested,
        (SELECT json_agg({STEP_ROW})::text FROM {STEP} s WHERE s.execution_id = e.id) AS steps,
        e.priority, e.run_at, e.prefetched, e.scheduled_at
)
SELECT id, task_name, queue, event_name, payload, attempts, max_attempts, claims,
    cancel_requested, steps, now() AS claimed_at, prefetched, scheduled_at
FROM claimed ORDER BY priority DESC, run_at, id
"""
CLAIM_ANY_QUEUE = _CLAIM.format(queue_filter="")
CLAIM_QUEUES = _CLAIM.format(queue_filter="AND queue = ANY(%(queues)s::text[])")


class ClaimRow(NamedTuple):
    """One claimed execution, in the claim statement's order."""

    id: int
    task_name: str
    queue: str
    event_name: str
    payload: str
    attempts: int
    max_attempts: int
    claims: int
    cancel_requested: bool
    #: JSON: its recorded steps as ``STEP_ROW`` builds them, or None.
    steps: str | None
    #: The database's now, as the claim read it.
    claimed_at: datetime
    prefetched: bool
    #: The cron tick it runs for, or None.
    scheduled_at: datetime | None


def claim_batch(
    cursor: psycopg.Cursor[Any],
    *,
    limit: int,
    start: int,
    worker: str,
    lease: float,
    queues: list[str],
    tasks: str,
) -> list[ClaimRow]:
    """Claim up to ``limit`` ready executions of ``tasks`` (a text[] literal) for
    ``worker``; the first ``start`` count their attempt now, the others when they end."""
    params = {
        "limit": limit,
        "start": start,
        "worker": worker,
        "lease": lease,
        "queues": queues,
        "tasks": tasks,
    }
    execute(cursor, CLAIM_QUEUES if queues else CLAIM_ANY_QUEUE, params, prepare=True)
    return rows(cursor, ClaimRow)


#: The steps of claimed executions read again after the claim: the claim reads steps from
#: its statement's snapshot, and a child finishing just before the claim locked its parent
#: may have recorded the parent's invoke step after that snapshot was taken.
STEPS_OF = f"""
SELECT s.execution_id, json_agg({STEP_ROW})::text FROM {STEP} s
WHERE s.execution_id = ANY(%(ids)s::bigint[]) GROUP BY s.execution_id
"""


class StepsOf(NamedTuple):
    execution_id: int
    #: JSON, as ``ClaimRow.steps``.
    steps: str


def steps_of(cursor: psycopg.Cursor[Any], ids: list[int]) -> list[StepsOf]:
    execute(cursor, STEPS_OF, {"ids": ids})
    return rows(cursor, StepsOf)


_NEXT_DUE = f"""
WITH RECURSIVE {_LEVELS}
SELECT extract(epoch FROM min(due.run_at) - now()) FROM levels CROSS JOIN LATERAL (
    SELECT run_at FROM {EXECUTION}
    WHERE {_CLAIMABLE} AND priority = levels.priority AND run_at > now() {{queue_filter}}
        AND task_name = ANY(%(tasks)s::text[])
    ORDER BY priority DESC, run_at, id
    LIMIT 1
) due
WHERE levels.priority IS NOT NULL
"""
NEXT_DUE_ANY_QUEUE = _NEXT_DUE.format(queue_filter="")
NEXT_DUE_QUEUES = _NEXT_DUE.format(queue_filter="AND queue = ANY(%(queues)s::text[])")


class NextDue(NamedTuple):
    seconds: float | None


def next_due(cursor: psycopg.Cursor[Any], *, queues: list[str], tasks: str) -> float | None:
    """Seconds until the next sleep, retry or delayed execution is due, so an idle worker
    wakes for it instead of waiting out the poll interval; None when nothing is."""
    statement = NEXT_DUE_QUEUES if queues else NEXT_DUE_ANY_QUEUE
    execute(cursor, statement, {"queues": queues, "tasks": tasks}, prepare=True)
    due = one(cursor, NextDue)
    return None if due is None or due.seconds is None else float(due.seconds)
