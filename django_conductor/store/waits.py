"""Waiting for a custom event: the wait is a step of kind ``event`` that names the event and
the payload values it needs, recorded here; ``store.events`` delivers an emitted payload to
it, and ``store.steps.time_out_step`` records its timeout."""

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
