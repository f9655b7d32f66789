"""Step records: the steps of several executions in one statement, each fenced on its claim,
and which of the records left out were left out for a lock rather than a lost claim."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from .base import EXECUTION, RUNNING, STEP, Cursor, claim_pairs, columns, execute, one, rows

#: Record the steps of several executions in one statement, each only while its claim
#: still owns the execution; returns the recorded (execution, name) pairs with the wake
#: time and whether the step is over. A row another session keeps locked is skipped: its
#: record is left out (``STILL_HELD`` tells it from a lost claim) and waits for the next
#: batch, instead of holding back everyone else's. Times are the database's: a record says
#: how many seconds ago it started (and ended), a sleep how long after its start it wakes
#: (or when). A pair already there is this claim's own earlier write (FOR SHARE keeps other
#: claims out), written again after a lost connection, or a step that raised in an earlier
#: attempt and has now run again: either way the new record replaces it.
#:
#: The statement is the PL/pgSQL function ``django_conductor_record_steps`` (migration
#: 0013): PostgreSQL keeps it parsed for the session, so a batch is only planned (for its
#: own arrays), even where psycopg prepares nothing (Django's default, and poolers).
RECORD_STEPS = """
SELECT * FROM django_conductor_record_steps(
    %(ids)s::bigint[], %(claims)s::int[], %(names)s::text[], %(kinds)s::text[],
    %(results)s::jsonb[], %(errors)s::text[], %(started_agos)s::float8[],
    %(finished_agos)s::float8[], %(wake_ats)s::timestamptz[], %(wake_ins)s::float8[]
)
"""


class StepWritten(NamedTuple):
    execution_id: int
    name: str
    #: A sleep's wake time, as the database computed it.
    wake_at: datetime | None
    #: The step is over: a finished step, or a sleep already due.
    over: bool


def record_steps(
    cursor: Cursor,
    records: Sequence[Any],
    started_agos: list[float],
    finished_agos: list[float | None],
) -> list[StepWritten]:
    """Write ``records`` (``step_writer.StepRecord``s); ``started_agos`` and
    ``finished_agos`` say, per record, how many seconds ago it started and ended."""
    params = columns(
        records,
        ids="execution_id",
        claims="claims",
        names="name",
        kinds="kind",
        results="result",
        errors="failure",
        wake_ats="wake_at",
        wake_ins="wake_in",
    )
    params["started_agos"] = started_agos
    params["finished_agos"] = finished_agos
    execute(cursor, RECORD_STEPS, params, prepare=True)
    return rows(cursor, StepWritten)


#: Which of the given claims (``ids``, ``claims``) this worker still holds.
STILL_HELD = f"""
SELECT e.id, e.claims FROM {EXECUTION} e
JOIN unnest(%(ids)s::bigint[], %(claims)s::int[]) AS v(id, claims)
    ON e.id = v.id AND e.claims = v.claims
WHERE e.status = {RUNNING} AND e.lease_expires_at > now()
"""


class Held(NamedTuple):
    id: int
    claims: int


def still_held(cursor: Cursor, keys: Iterable[tuple[int, int]]) -> list[Held]:
    execute(cursor, STILL_HELD, claim_pairs(keys))
    return rows(cursor, Held)


#: A child invoke's or an event wait's timeout, recorded as the step's outcome, fenced on
#: the claim: whichever of the timeout and the child's end (or the event) is recorded first
#: is the step's outcome for good. Returns (recorded, the child's id if any), or nothing
#: when the claim lost the execution.
TIME_OUT_STEP = f"""
WITH owner AS (
    SELECT id FROM {EXECUTION}
    WHERE id = %(id)s AND claims = %(claims)s AND status = {RUNNING}
    FOR NO KEY UPDATE
), timed_out AS (
    UPDATE {STEP} s SET error = %(error)s, finished_at = now()
    FROM owner
    WHERE s.execution_id = owner.id AND s.name = %(name)s AND s.finished_at IS NULL
    RETURNING s.child_id
)
SELECT EXISTS (SELECT FROM timed_out), (SELECT child_id FROM timed_out) FROM owner
"""


class TimedOut(NamedTuple):
    #: The timeout is the step's outcome (the child, or the event, had not come first).
    recorded: bool
    child_id: int | None


def time_out_step(
    cursor: Cursor, *, execution_id: int, claims: int, step_name: str, error: str
) -> TimedOut | None:
    """None when the claim lost the execution."""
    params = {"id": execution_id, "claims": claims, "name": step_name, "error": error}
    execute(cursor, TIME_OUT_STEP, params)
    return one(cursor, TimedOut)
