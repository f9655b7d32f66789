"""Emitting a custom event, in one statement in the emitter's transaction: one execution per
subscribed task, and the payload delivered to the open waits for the event whose match it
has (``ctx.wait_for_event``), their executions woken; a notification per queue concerned.
Locks: the woken executions in id order, then their steps, as everywhere."""

from __future__ import annotations

from typing import NamedTuple

from .base import (
    EXECUTION,
    LIVE,
    PENDING,
    READY_CHANNEL,
    RUNNING,
    STEP,
    WAITING,
    Cursor,
    concurrency_key,
    execute,
    rows,
)
from .executions import Created

EMIT = f"""
WITH ins AS (
    INSERT INTO {EXECUTION} (task_name, queue, event_name, payload, priority, max_attempts,
                             concurrency_key, trace_context)
    SELECT t.task, t.queue, %(event)s, t.payload::jsonb, t.priority, t.max_attempts,
        {concurrency_key("t.limit_key", "t.payload::jsonb")}, %(trace_context)s::jsonb
    FROM unnest(%(tasks)s::text[], %(queues)s::text[], %(payloads)s::text[],
                %(priorities)s::int[], %(max_attempts)s::int[], %(limit_keys)s::text[])
        WITH ORDINALITY AS t(task, queue, payload, priority, max_attempts, limit_key, n)
    ORDER BY t.n
    RETURNING id
), waiting AS (
    SELECT e.id FROM {EXECUTION} e
    WHERE e.status IN {LIVE} AND e.id IN (
        SELECT s.execution_id FROM {STEP} s
        WHERE s.kind = 'event' AND s.awaited_event = %(event)s AND s.finished_at IS NULL
    )
    ORDER BY e.id
    FOR NO KEY UPDATE
), delivered AS (
    UPDATE {STEP} s SET result = %(payload)s::jsonb, finished_at = now()
    FROM waiting w
    WHERE s.execution_id = w.id AND s.kind = 'event' AND s.awaited_event = %(event)s
        AND s.finished_at IS NULL
        AND (s.event_match IS NULL OR %(payload)s::jsonb @> s.event_match)
    RETURNING s.execution_id
), woken AS (
    -- Parked on the wait: runs again at once. Still running: flagged, so that it does not
    -- park after missing the event.
    UPDATE {EXECUTION} p SET
        status = CASE WHEN p.status = {WAITING} THEN {PENDING} ELSE p.status END,
        run_at = CASE WHEN p.status = {WAITING} THEN now() ELSE p.run_at END,
        wake_pending = p.status = {RUNNING}
    FROM (SELECT DISTINCT execution_id FROM delivered) d
    WHERE p.id = d.execution_id
    RETURNING p.status, p.queue
), notified AS (
    SELECT pg_notify('{READY_CHANNEL}', q) FROM (
        SELECT unnest(%(queues)s::text[]) UNION SELECT queue FROM woken WHERE status = {PENDING}
    ) AS ready(q)
)
SELECT id FROM ins WHERE (SELECT count(*) FROM notified) >= 0 ORDER BY id
"""


class Subscriber(NamedTuple):
    """One execution to create: a subscribed task and the payload it gets."""

    task: str
    queue: str
    payload: str
    priority: int
    max_attempts: int
    #: Its task's concurrency key spec (``Task.limit_key``).
    limit_key: str | None


def emit(
    cursor: Cursor,
    event: str,
    payload: str,
    subscribers: list[Subscriber],
    trace_context: str | None = None,
) -> list[int]:
    """The new executions' ids, in the subscribers' order; ``trace_context`` (JSON) is the
    emit's, for their attempts' spans."""
    params = {
        "event": event,
        "trace_context": trace_context,
        "payload": payload,
        "tasks": [s.task for s in subscribers],
        "queues": [s.queue for s in subscribers],
        "payloads": [s.payload for s in subscribers],
        "priorities": [s.priority for s in subscribers],
        "max_attempts": [s.max_attempts for s in subscribers],
        "limit_keys": [s.limit_key for s in subscribers],
    }
    execute(cursor, EMIT, params)
    return [created.id for created in rows(cursor, Created)]
