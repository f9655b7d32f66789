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

CLAIMABLE_WHERE = f"status IN {CLAIMABLE}"

#: Takes the ``picked`` rows (id, place) under this worker's lease and returns them as
#: ``ClaimRow``s, in claim order: for the claims of batches and of one named execution (the
#: worker's claim takes its rows the same way, in ``django_conductor_claim``).
TAKE = f"""
claimed AS (
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
        e.priority, e.run_at, e.prefetched, e.scheduled_at, e.trace_context::text
)
SELECT id, task_name, queue, event_name, payload, attempts, max_attempts, claims,
    cancel_requested, steps, now() AS claimed_at, prefetched, scheduled_at, run_at,
    trace_context
FROM claimed ORDER BY priority DESC, run_at, id
"""

#: The worker's claim: the PL/pgSQL function of migration 0014, one statement for the
#: executions of limited tasks and the rest, parsed once per session, planned per call.
CLAIM = """
SELECT * FROM django_conductor_claim(
    %(worker)s, %(lease)s::float8, %(queues)s::text[], %(tasks)s::text[], %(places)s, %(idle)s
)
"""


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
    #: When it became due, for the queue's lag.
    run_at: datetime | None
    #: JSON: the trace context of the invoke that created it, or None.
    trace_context: str | None


def claim(
    cursor: psycopg.Cursor[Any],
    *,
    places: int,
    idle: int,
    worker: str,
    lease: float,
    queues: list[str],
    tasks: str | list[str],
) -> list[ClaimRow]:
    """Claim up to ``places`` ready executions of ``tasks`` (a list, or a text[] literal)
    for ``worker``, in claim order: for ``idle`` threads, those of limited tasks first (no
    more per key than its limit allows), then the rest. The first ``idle`` count their
    attempt now, the others (prefetched) when they end. ``queues`` empty: any queue."""
    params = {
        "worker": worker,
        "lease": lease,
        "queues": queues or None,
        "tasks": tasks,
        "places": places,
        "idle": idle,
    }
    execute(cursor, CLAIM, params)
    return rows(cursor, ClaimRow)


#: One named execution, claimed with the same update: for the test helpers' ``run_one``,
#: which runs a chosen execution rather than the next in line.
CLAIM_ONE = f"""
WITH picked AS (
    SELECT id, 1 AS place FROM {EXECUTION}
    WHERE id = %(id)s AND {CLAIMABLE_WHERE} AND run_at <= now()
    FOR UPDATE SKIP LOCKED
), {TAKE}"""


def claim_one(
    cursor: psycopg.Cursor[Any], execution_id: int, *, worker: str, lease: float
) -> ClaimRow | None:
    """Claim the execution if it is ready and no one holds it; its attempt starts now."""
    params = {"id": execution_id, "start": 1, "worker": worker, "lease": lease}
    execute(cursor, CLAIM_ONE, params)
    return one(cursor, ClaimRow)


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


#: The idle worker's look for the next due execution: the PL/pgSQL function of migration
#: 0016, parsed once per session, planned per call.
NEXT_DUE = "SELECT django_conductor_next_due(%(queues)s::text[], %(tasks)s::text[])"


class NextDue(NamedTuple):
    seconds: float | None


def next_due(cursor: psycopg.Cursor[Any], *, queues: list[str], tasks: str) -> float | None:
    """Seconds until the next sleep, retry or delayed execution is due, so an idle worker
    wakes for it instead of waiting out the poll interval; None when nothing is."""
    execute(cursor, NEXT_DUE, {"queues": queues or None, "tasks": tasks})
    due = one(cursor, NextDue)
    return None if due is None or due.seconds is None else float(due.seconds)
