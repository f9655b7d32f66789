"""Waiting for a custom event: the wait is a step of kind ``event`` that names the event and
the payload values it needs, recorded and timed out here; ``store.events`` delivers an
emitted payload to it."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from .base import EXECUTION, RUNNING, STEP, Cursor, execute, one

#: Record the wait, fenced on the claim. Returns (recorded now, the deadline ``timeout``
#: seconds from the database's now, NULL for none), or nothing when the claim lost the
#: execution.
START_WAIT = f"""
WITH owner AS (
    SELECT id, attempts + prefetched::int AS attempts FROM {EXECUTION}
    WHERE id = %(id)s AND claims = %(claims)s AND status = {RUNNING}
    FOR SHARE
), step AS (
    INSERT INTO {STEP} (execution_id, name, kind, attempt, started_at, wake_at, awaited_event,
                        event_match)
    SELECT owner.id, %(name)s, 'event', owner.attempts, now(),
        now() + make_interval(secs => %(timeout)s::float8), %(event)s, %(match)s::jsonb
    FROM owner
    ON CONFLICT (execution_id, name) DO NOTHING
    RETURNING wake_at
)
SELECT EXISTS (SELECT FROM step), (SELECT wake_at FROM step) FROM owner
"""


class WaitStarted(NamedTuple):
    #: False when this claim had recorded it already (then a replay reads it).
    recorded: bool
    deadline: datetime | None


def start_wait(
    cursor: Cursor,
    *,
    execution_id: int,
    claims: int,
    step_name: str,
    event: str,
    match: str | None,
    timeout: float | None,
) -> WaitStarted | None:
    """None when the claim lost the execution."""
    params = {
        "id": execution_id,
        "claims": claims,
        "name": step_name,
        "event": event,
        "match": match,
        "timeout": timeout,
    }
    execute(cursor, START_WAIT, params)
    return one(cursor, WaitStarted)


#: The wait's timeout as its outcome, fenced on the claim: whichever of the timeout and the
#: event is recorded first is the wait's outcome for good.
TIME_OUT_WAIT = f"""
WITH owner AS (
    SELECT id FROM {EXECUTION}
    WHERE id = %(id)s AND claims = %(claims)s AND status = {RUNNING}
    FOR NO KEY UPDATE
), timed_out AS (
    UPDATE {STEP} s SET error = %(error)s, finished_at = now()
    FROM owner
    WHERE s.execution_id = owner.id AND s.name = %(name)s AND s.kind = 'event'
        AND s.finished_at IS NULL
    RETURNING s.id
)
SELECT EXISTS (SELECT FROM timed_out) FROM owner
"""


class TimedOut(NamedTuple):
    recorded: bool


def time_out_wait(
    cursor: Cursor, *, execution_id: int, claims: int, step_name: str, error: str
) -> TimedOut | None:
    """None when the claim lost the execution."""
    params = {"id": execution_id, "claims": claims, "name": step_name, "error": error}
    execute(cursor, TIME_OUT_WAIT, params)
    return one(cursor, TimedOut)
