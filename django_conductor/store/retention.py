"""Pruning finished executions past their retention: whole trees from their roots, in
batches that lock only finished rows and never wait for a lock.

A root is due when it and every execution below it have finished and the root finished
longer ago than its task's retention for its status. Each batch is one statement, so a
worker killed halfway leaves every tree either whole or gone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .base import EXECUTION, FAILURES, FINISHED, STEP, Cursor, execute, one, rows

#: Only one session prunes at a time: each batch's transaction holds this advisory lock.
PRUNE_LOCK = 0x636F6E6475637472  # "conductr"


class Keep(NamedTuple):
    """How long executions of ``task_name`` (None: any task without a rule of its own)
    that ended in ``status`` are kept, in seconds; None keeps them for ever."""

    task_name: str | None
    status: str
    seconds: float | None


class Removed(NamedTuple):
    """Executions removed (or, in a dry run, due) of one task and status; ``roots`` of them
    were the roots of their trees."""

    task_name: str
    status: str
    executions: int
    roots: int


class Locked(NamedTuple):
    locked: bool


#: The tasks that have finished roots, one index probe each (a skip scan of
#: ``conductor_prunable``), and each one's rule per finished status: its own or the default.
_RULES = f"""
names AS (
    (SELECT task_name FROM {EXECUTION}
     WHERE parent_id IS NULL AND finished_at IS NOT NULL ORDER BY task_name LIMIT 1)
    UNION ALL
    SELECT (SELECT e.task_name FROM {EXECUTION} e
            WHERE e.parent_id IS NULL AND e.finished_at IS NOT NULL AND e.task_name > n.task_name
            ORDER BY e.task_name LIMIT 1)
    FROM names n WHERE n.task_name IS NOT NULL
), keep AS (
    SELECT * FROM unnest(%(tasks)s::text[], %(statuses)s::text[], %(seconds)s::float8[])
        AS k(task_name, status, seconds)
), rules AS (
    SELECT n.task_name, d.status,
           CASE WHEN own.status IS NULL THEN d.seconds ELSE own.seconds END AS seconds
    FROM names n
    CROSS JOIN (SELECT status, seconds FROM keep WHERE task_name IS NULL) d
    LEFT JOIN keep own ON own.task_name = n.task_name AND own.status = d.status
    WHERE n.task_name IS NOT NULL
)"""

#: The roots past their rule, oldest first per rule, read from ``conductor_prunable`` (task,
#: status, finished_at) so that a batch reads only due rows; a root with an unfinished
#: execution below it is passed over, and so never holds back those behind it.
_DUE = f"""
SELECT due.id FROM rules r CROSS JOIN LATERAL (
    SELECT e.id FROM {EXECUTION} e
    WHERE e.parent_id IS NULL AND e.finished_at IS NOT NULL
      AND e.task_name = r.task_name AND e.status = r.status
      AND e.finished_at < now() - make_interval(secs => r.seconds)
      AND NOT EXISTS (
          WITH RECURSIVE below AS (
              SELECT c.id, c.status FROM {EXECUTION} c WHERE c.parent_id = e.id
              UNION ALL
              SELECT c.id, c.status FROM {EXECUTION} c JOIN below b ON c.parent_id = b.id
          )
          SELECT 1 FROM below WHERE below.status NOT IN {FINISHED}
      )
    ORDER BY e.finished_at
) due
WHERE r.seconds IS NOT NULL"""

_TREES = f"""
trees AS (
    SELECT id AS root, id FROM roots
    UNION ALL
    SELECT t.root, c.id FROM {EXECUTION} c JOIN trees t ON c.parent_id = t.id
)"""

#: One batch: lock the due roots and their trees, skipping (never waiting for) rows another
#: session holds, and re-reading each locked row's status; remove the trees locked whole,
#: with their steps and failure records, and unlink any step elsewhere that names one of
#: them as its child. Returns what went, per task and status.
PRUNE_BATCH = f"""
WITH RECURSIVE {_RULES}, roots AS (
    SELECT e.id FROM {EXECUTION} e
    WHERE e.id IN ({_DUE} LIMIT %(limit)s) AND e.status IN {FINISHED}
    FOR UPDATE SKIP LOCKED
), {_TREES}, held AS (
    SELECT e.id FROM {EXECUTION} e
    WHERE e.id IN (SELECT id FROM trees) AND e.status IN {FINISHED}
    FOR UPDATE SKIP LOCKED
), doomed AS (
    SELECT id FROM trees WHERE root IN (
        SELECT root FROM trees GROUP BY root HAVING bool_and(id IN (SELECT id FROM held))
    )
), doomed_ids AS (
    -- An array, so that every removal below is index lookups, however few rows the
    -- planner expects.
    SELECT array_agg(id) AS ids FROM doomed
), failures_gone AS (
    DELETE FROM {FAILURES} WHERE execution_id = ANY((SELECT ids FROM doomed_ids)::bigint[])
), steps_gone AS (
    DELETE FROM {STEP} WHERE execution_id = ANY((SELECT ids FROM doomed_ids)::bigint[])
), unlinked AS (
    UPDATE {STEP} SET child_id = NULL
    WHERE child_id = ANY((SELECT ids FROM doomed_ids)::bigint[])
      AND NOT execution_id = ANY((SELECT ids FROM doomed_ids)::bigint[])
), gone AS (
    DELETE FROM {EXECUTION} WHERE id = ANY((SELECT ids FROM doomed_ids)::bigint[])
    RETURNING task_name, status, parent_id IS NULL AS root
)
SELECT task_name, status, count(*), count(*) FILTER (WHERE root)
FROM gone GROUP BY task_name, status ORDER BY task_name, status
"""

#: What a prune would remove now, locking nothing.
DUE = f"""
WITH RECURSIVE {_RULES}, roots AS ({_DUE}), {_TREES}
SELECT e.task_name, e.status, count(*), count(*) FILTER (WHERE e.parent_id IS NULL)
FROM trees t JOIN {EXECUTION} e ON e.id = t.id
GROUP BY e.task_name, e.status ORDER BY e.task_name, e.status
"""

#: Transaction-level, never session-level: a pooler that hands the server connection to
#: another client after each transaction would hand a session lock on with it.
TRY_LOCK = "SELECT pg_try_advisory_xact_lock(%(key)s)"
LOCK = "SELECT pg_advisory_xact_lock(%(key)s) IS NOT NULL"


def _params(keep: Sequence[Keep]) -> dict[str, list[object]]:
    return {
        "tasks": [rule.task_name for rule in keep],
        "statuses": [rule.status for rule in keep],
        "seconds": [rule.seconds for rule in keep],
    }


#: The batch's row estimates are rough, and compiling it would take longer than running it.
NO_JIT = "SET LOCAL jit = off"


def prune_batch(cursor: Cursor, keep: Sequence[Keep], limit: int) -> list[Removed]:
    """Remove up to ``limit`` due trees; run it in a transaction of its own."""
    execute(cursor, NO_JIT)
    execute(cursor, PRUNE_BATCH, {**_params(keep), "limit": limit})
    return rows(cursor, Removed)


def due(cursor: Cursor, keep: Sequence[Keep]) -> list[Removed]:
    """Run it in a transaction (``NO_JIT`` lasts for it)."""
    execute(cursor, NO_JIT)
    execute(cursor, DUE, _params(keep))
    return rows(cursor, Removed)


def lock(cursor: Cursor, *, wait: bool) -> bool:
    """Take the pruning lock until this transaction ends; without ``wait``, only if it is
    free."""
    execute(cursor, LOCK if wait else TRY_LOCK, {"key": PRUNE_LOCK})
    found = one(cursor, Locked)
    return bool(found and found.locked)
