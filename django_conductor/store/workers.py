"""A worker's own rows and leases: its heartbeat, renewing the leases it holds, and what it
says at start and forgets at stop."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import psycopg

from .base import CLAIMABLE, EXECUTION, HEARTBEAT, RUNNING, Cursor, claim_pairs, execute, rows

#: Renew the leases this process holds, by claim (a restarted worker that reuses an id must
#: not keep a dead one's leases alive, nor a re-claim its lost predecessor's), and only while
#: they last: an expired lease is another worker's to take. Rows are locked in id order, as
#: everywhere. Returns which of them were cancelled.
_RENEW_LEASES = f"""
WITH mine AS (
    SELECT e.id FROM {EXECUTION} e
    JOIN unnest(%(ids)s::bigint[], %(claims)s::int[]) AS v(id, claims)
        ON e.id = v.id AND e.claims = v.claims
    WHERE e.lease_owner = %(worker)s AND e.status = {RUNNING} AND e.lease_expires_at > now()
    ORDER BY e.id
    FOR NO KEY UPDATE OF e {{lock}}
)
UPDATE {EXECUTION} e SET lease_expires_at = now() + make_interval(secs => %(lease)s)
FROM mine WHERE e.id = mine.id
RETURNING e.id, e.claims, e.cancel_requested_at IS NOT NULL
"""
#: First every row nobody holds; then, waiting, the few a step record held for a moment.
RENEW_LEASES_UNLOCKED = _RENEW_LEASES.format(lock="SKIP LOCKED")
RENEW_LEASES_WAITING = _RENEW_LEASES.format(lock="")
#: Bounds how long the waiting renewal waits for a row lock.
LOCK_TIMEOUT = "SELECT set_config('lock_timeout', %s, true)"

BEAT = f"""
INSERT INTO {HEARTBEAT} (worker_id, host, pid, queues, tasks, concurrency, started_at,
                         last_seen_at)
VALUES (%(worker)s, %(host)s, %(pid)s, %(queues)s::jsonb, %(tasks)s::jsonb, %(concurrency)s,
        now(), now())
ON CONFLICT (worker_id) DO UPDATE SET last_seen_at = now(), tasks = EXCLUDED.tasks
"""

#: Ready executions of tasks this worker does not have, a few per task, to say so at start.
READY_ELSEWHERE = f"""
SELECT task_name, count(*) FROM (
    SELECT task_name FROM {EXECUTION}
    WHERE status IN {CLAIMABLE} AND run_at <= now()
        AND task_name <> ALL(%(tasks)s::text[])
    LIMIT 10000
) ready GROUP BY task_name ORDER BY task_name
"""

FORGET_WORKER = f"DELETE FROM {HEARTBEAT} WHERE worker_id = %(worker)s"

#: Heartbeats older than a few leases belong to workers that are gone.
FORGET_DEAD_WORKERS = f"""
DELETE FROM {HEARTBEAT} WHERE last_seen_at < now() - make_interval(secs => %(age)s)
"""


class Renewed(NamedTuple):
    id: int
    claims: int
    cancel_requested: bool


def renew_leases(
    cursor: psycopg.Cursor[Any],
    *,
    worker: str,
    lease: float,
    keys: Iterable[tuple[int, int]],
    wait: bool,
) -> list[Renewed]:
    """Renew these claims' leases; without ``wait``, skipping rows another session holds."""
    statement = RENEW_LEASES_WAITING if wait else RENEW_LEASES_UNLOCKED
    execute(cursor, statement, {"worker": worker, "lease": lease, **claim_pairs(keys)})
    return rows(cursor, Renewed)


def lock_timeout(cursor: psycopg.Cursor[Any], milliseconds: int) -> None:
    """For the rest of the caller's transaction."""
    execute(cursor, LOCK_TIMEOUT, [f"{milliseconds}ms"])


def beat(cursor: Cursor, **worker: Any) -> None:
    """Insert or refresh the heartbeat row: ``worker``, ``host``, ``pid``, ``queues`` and
    ``tasks`` (JSON), ``concurrency``."""
    execute(cursor, BEAT, worker)


class ReadyElsewhere(NamedTuple):
    task_name: str
    ready: int


def ready_elsewhere(cursor: Cursor, tasks: list[str]) -> list[ReadyElsewhere]:
    execute(cursor, READY_ELSEWHERE, {"tasks": tasks})
    return rows(cursor, ReadyElsewhere)


def forget_worker(cursor: Cursor, worker: str) -> None:
    execute(cursor, FORGET_WORKER, {"worker": worker})


def forget_dead_workers(cursor: Cursor, age: float) -> None:
    execute(cursor, FORGET_DEAD_WORKERS, {"age": age})
