"""Custom events: one execution per subscribed task, in one statement, in the emitter's
transaction, with a notification per queue concerned."""

from __future__ import annotations

from typing import NamedTuple

from .base import EXECUTION, READY_CHANNEL, Cursor, execute, rows

INSERT_EMITTED = f"""
WITH ins AS (
    INSERT INTO {EXECUTION} (task_name, queue, event_name, payload, priority, max_attempts)
    SELECT t.task, t.queue, %(event)s, t.payload::jsonb, t.priority, t.max_attempts
    FROM unnest(%(tasks)s::text[], %(queues)s::text[], %(payloads)s::text[],
                %(priorities)s::int[], %(max_attempts)s::int[]) WITH ORDINALITY
        AS t(task, queue, payload, priority, max_attempts, n)
    ORDER BY t.n
    RETURNING id
), notified AS (
    SELECT pg_notify('{READY_CHANNEL}', q) FROM (SELECT DISTINCT unnest(%(queues)s::text[]) q) qs
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


class Created(NamedTuple):
    id: int


def insert_emitted(cursor: Cursor, event: str, subscribers: list[Subscriber]) -> list[int]:
    """The new executions' ids, in the subscribers' order."""
    params = {
        "event": event,
        "tasks": [s.task for s in subscribers],
        "queues": [s.queue for s in subscribers],
        "payloads": [s.payload for s in subscribers],
        "priorities": [s.priority for s in subscribers],
        "max_attempts": [s.max_attempts for s in subscribers],
    }
    execute(cursor, INSERT_EMITTED, params)
    return [created.id for created in rows(cursor, Created)]
