"""Creating executions (one, many, or one per dedupe key), making a waiting one due now, and
reading one's state for ``ExecutionHandle``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from .base import (
    EXECUTION,
    LIVE,
    PENDING,
    Cursor,
    concurrency_key,
    execute,
    one,
    ready_channel,
    rows,
)

#: A live execution with a dedupe key: the key is unique among these.
LIVE_PREDICATE = f"dedupe_key IS NOT NULL AND NOT superseded AND status IN {LIVE}"

#: The run time given, or ``delay`` seconds after the statement, as the database tells time
#: (statement_timestamp(), as in the columns' defaults, so a delay counts from the invoke
#: even inside a long transaction).
RUN_AT = (
    "coalesce(%(run_at)s::timestamptz, "
    "statement_timestamp() + make_interval(secs => %(delay)s::float8))"
)

#: The new execution's concurrency key, from the invocation's ``limit_key``.
_KEY = "%(limit_key)s::text"
#: The trace context of the invoke (``telemetry.producing``); NULL with tracing off.
_TRACE = "%(trace_context)s::jsonb"

INSERT_MANY = f"""
WITH ins AS (
    INSERT INTO {EXECUTION} (task_name, queue, payload, priority, run_at, max_attempts,
                             concurrency_key, trace_context)
    SELECT %(task)s, %(queue)s, p::jsonb, %(priority)s, {RUN_AT}, %(max_attempts)s,
        {concurrency_key(_KEY, "p::jsonb")}, {_TRACE}
    FROM unnest(%(payloads)s::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n
    RETURNING id
)
SELECT ins.id FROM ins, (SELECT pg_notify(%(channel)s, %(queue)s)) AS notified
"""

#: One execution and its queue's notification: the PL/pgSQL function of migration 0015,
#: planned once per session even where psycopg prepares nothing (Django's default, poolers).
INSERT_ONE = """
SELECT django_conductor_invoke(
    %(task)s, %(queue)s, %(payload)s::jsonb, %(priority)s, %(run_at)s::timestamptz,
    %(delay)s::float8, %(max_attempts)s, %(limit_key)s::text, %(trace_context)s::jsonb,
    %(channel)s
)
"""

INSERT_DEDUPED = f"""
INSERT INTO {EXECUTION} (task_name, queue, payload, priority, run_at, max_attempts, dedupe_key,
                         concurrency_key, trace_context)
VALUES (%(task)s, %(queue)s, %(payload)s::jsonb, %(priority)s, {RUN_AT}, %(max_attempts)s,
        %(dedupe_key)s, {concurrency_key(_KEY, "%(payload)s::jsonb")}, {_TRACE})
ON CONFLICT (task_name, queue, dedupe_key) WHERE {LIVE_PREDICATE}
DO UPDATE SET payload = EXCLUDED.payload, run_at = EXCLUDED.run_at, priority = EXCLUDED.priority,
    concurrency_key = EXCLUDED.concurrency_key, trace_context = EXCLUDED.trace_context
WHERE {EXECUTION}.status = {PENDING}
RETURNING id
"""

#: The live execution with the key goes on without it.
SUPERSEDE = f"""
UPDATE {EXECUTION} SET superseded = true
WHERE task_name = %(task)s AND queue = %(queue)s AND dedupe_key = %(dedupe_key)s
    AND {LIVE_PREDICATE}
"""


class Created(NamedTuple):
    id: int


class CreatedNotified(NamedTuple):
    id: int
    notified: Any


class Invocation(NamedTuple):
    """What every new execution of one invoke shares."""

    task: str
    queue: str
    priority: int
    max_attempts: int
    #: An absolute run time, or else ``delay`` seconds from the statement.
    run_at: datetime | None
    delay: float
    #: Its task's concurrency key spec (``Task.limit_key``): None with no limit.
    limit_key: str | None
    #: JSON: the invoke's trace context, stored for its attempts' spans; None untraced.
    trace_context: str | None = None


def _params(invocation: Invocation, **more: Any) -> dict[str, Any]:
    """A statement's parameters: the invocation's, its ready channel, and ``more``."""
    return {**invocation._asdict(), "channel": ready_channel(invocation.limit_key), **more}


def insert_one(cursor: Cursor, invocation: Invocation, payload: str) -> int:
    """One execution, and its queue's notification, in one call."""
    execute(cursor, INSERT_ONE, _params(invocation, payload=payload))
    return int(cursor.fetchone()[0])


def insert_many(cursor: Cursor, invocation: Invocation, payloads: list[str]) -> list[int]:
    """One execution per payload, in order, in one statement."""
    execute(cursor, INSERT_MANY, _params(invocation, payloads=payloads))
    return [created.id for created in rows(cursor, Created)]


def insert_deduped(cursor: Cursor, invocation: Invocation, payload: str, key: str) -> int:
    """Insert, or update the pending execution that has the key. When the live one with the
    key has started already, it goes on without the key and a new one takes it: two
    statements more, in the caller's transaction."""
    params = {**invocation._asdict(), "payload": payload, "dedupe_key": key}
    execute(cursor, INSERT_DEDUPED, params)
    created = one(cursor, Created)
    if created is not None:
        return created.id
    execute(cursor, SUPERSEDE, params)
    execute(cursor, INSERT_DEDUPED, params)
    (created,) = rows(cursor, Created)  # nothing holds the key once it is superseded
    return created.id


#: The slot the statement's time falls in, for throttle and debounce: slots of ``seconds``
#: from the epoch, by the database's clock.
_SLOT = "floor(extract(epoch FROM statement_timestamp()) / %(seconds)s::float8)::bigint"

#: Keep the first call of each slot (per key); the others store nothing.
INSERT_THROTTLED = f"""
INSERT INTO {EXECUTION} (task_name, queue, payload, priority, run_at, max_attempts, slot,
                         concurrency_key, trace_context)
SELECT %(task)s, %(queue)s, p::jsonb, %(priority)s, {RUN_AT}, %(max_attempts)s,
    't:' || {_SLOT} || ':' || %(key)s, {concurrency_key(_KEY, "p::jsonb")}, {_TRACE}
FROM unnest(%(payloads)s::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n
ON CONFLICT (task_name, slot) WHERE slot IS NOT NULL DO NOTHING
RETURNING id, pg_notify(%(channel)s, %(queue)s)
"""


def insert_throttled(
    cursor: Cursor, invocation: Invocation, payloads: list[str], key: str, seconds: float
) -> list[int]:
    """The execution stored for this slot, if it is the slot's first call."""
    params = _params(invocation, payloads=payloads, key=key, seconds=seconds)
    execute(cursor, INSERT_THROTTLED, params)
    return [created.id for created in rows(cursor, CreatedNotified)]


#: Keep the last call of each slot (per key), to run at the next slot's start: a later call
#: replaces the payload while its execution has not started. ``ahead`` is 1 when the slot's
#: execution had started already: the call then goes to the slot after.
INSERT_DEBOUNCED = f"""
WITH slot AS (SELECT {_SLOT} + %(ahead)s AS n)
INSERT INTO {EXECUTION} (task_name, queue, payload, priority, run_at, max_attempts, slot,
                         concurrency_key, trace_context)
SELECT %(task)s, %(queue)s, %(payload)s::jsonb, %(priority)s,
    to_timestamp((slot.n + 1) * %(seconds)s::float8), %(max_attempts)s,
    'd:' || slot.n || ':' || %(key)s, {concurrency_key(_KEY, "%(payload)s::jsonb")}, {_TRACE}
FROM slot
ON CONFLICT (task_name, slot) WHERE slot IS NOT NULL
DO UPDATE SET payload = EXCLUDED.payload, priority = EXCLUDED.priority,
    concurrency_key = EXCLUDED.concurrency_key, trace_context = EXCLUDED.trace_context
WHERE {EXECUTION}.status = {PENDING} AND {EXECUTION}.claims = 0
RETURNING id
"""


def insert_debounced(
    cursor: Cursor, invocation: Invocation, payload: str, key: str, seconds: float
) -> int:
    params = {**invocation._asdict(), "payload": payload, "key": key, "seconds": seconds}
    for ahead in (0, 1):
        execute(cursor, INSERT_DEBOUNCED, {**params, "ahead": ahead})
        created = one(cursor, Created)
        if created is not None:
            return created.id
    # Only a slot a second ahead could have started already: not in one call.
    raise RuntimeError("the next two debounce slots had both started")


#: statement_timestamp(), as in the columns' defaults: a row written earlier in the same
#: transaction is not mistaken for one that is still waiting.
RUN_NOW = f"""
UPDATE {EXECUTION} SET run_at = statement_timestamp()
WHERE id = %(id)s AND status = {PENDING} AND run_at > statement_timestamp()
RETURNING queue
"""


class Queue(NamedTuple):
    queue: str


def run_now(cursor: Cursor, execution_id: int) -> str | None:
    """Make a pending execution that is not due yet due now; its queue, or None."""
    execute(cursor, RUN_NOW, {"id": execution_id})
    made_due = one(cursor, Queue)
    return None if made_due is None else made_due.queue


STATE = f"SELECT status, result::text, error FROM {EXECUTION} WHERE id = %s"


class State(NamedTuple):
    status: str
    #: JSON text.
    result: str | None
    error: str


def state(cursor: Cursor | Any, execution_id: int) -> State | None:
    """None when there is no such execution (removed, or not committed yet)."""
    execute(cursor, STATE, [execution_id])
    return one(cursor, State)
