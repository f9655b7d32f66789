"""Writing how attempts ended: a batch of outcomes in one statement; executions given back
by a stopping worker; and the reaper's re-queue of a dead worker's executions. Each returns
its status changes for ``transitions.after_status_changes`` in the same transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .base import (
    CANCELLED,
    CLAIMABLE,
    EXECUTION,
    FAILED,
    FAILURES,
    FINISHED,
    PENDING,
    RUNNING,
    WAITING,
    Cursor,
    claim_pairs,
    columns,
    execute,
    rows,
)
from .transitions import StatusChange

#: How an attempt's end becomes the execution's status, read on the row as the update locked
#: it: a park, retry or hand-back of an execution whose cancel is requested ends it cancelled;
#: a park to wait on a child that has finished meanwhile (wake_pending) runs again at once.
_FINAL = (
    f"(CASE WHEN e.cancel_requested_at IS NOT NULL AND v.status IN {CLAIMABLE} "
    f"THEN {CANCELLED} WHEN v.status = {WAITING} AND e.wake_pending THEN {PENDING} "
    "ELSE v.status END)"
)

#: One statement writes a batch of attempt outcomes and their failure records. It first locks
#: the batch's parents, which the parents' wake-up (``WAKE_PARENTS``, next in the same
#: transaction) changes, then the batch's rows in updating them: parents before children, as
#: a cancel or a retry locks a tree (a child's id is always above its parent's). A
#: parked execution goes back to pending at once if a child finished while it ran
#: (wake_pending); one that would run again (parked, retrying, handed back) while a cancel is
#: requested ends cancelled instead, keeping the cancel's reason, and its attempt counts.
#: Returns what ``wake_parents`` and the notifications need. Every time is the database's:
#: an outcome's ``run_at`` is one the database gave (a wake time, a child's deadline), or
#: it says ``run_in`` seconds from now (a retry backoff, a hand-back).
FINISH_ATTEMPTS = f"""
WITH v AS (
    SELECT * FROM unnest(
        %(ids)s::bigint[], %(claims)s::int[], %(statuses)s::text[], %(run_ats)s::timestamptz[],
        %(run_ins)s::float8[], %(results)s::jsonb[], %(errors)s::text[],
        %(tracebacks)s::text[], %(refunds)s::int[]
    ) AS v(id, claims, status, run_at, run_in, result, error, traceback, refund)
), parents AS (
    -- The batch's parents first, in id order (a parent's id is below its children's), as a
    -- cancel or a retry locks a tree: a child's outcome and cancelling its parent never
    -- wait on each other. The batch's own rows are locked by the update itself.
    SELECT p.id FROM {EXECUTION} p
    WHERE p.id IN (SELECT c.parent_id FROM {EXECUTION} c WHERE c.id IN (SELECT id FROM v))
    ORDER BY p.id
    FOR NO KEY UPDATE
), done AS (
    UPDATE {EXECUTION} e SET
        status = {_FINAL},
        run_at = CASE WHEN {_FINAL} = {CANCELLED} THEN e.run_at
                      WHEN v.status = {WAITING} AND {_FINAL} = {PENDING} THEN now()
                      WHEN v.status = {WAITING} THEN v.run_at
                      ELSE coalesce(v.run_at, now() + make_interval(secs => v.run_in), e.run_at)
                 END,
        -- The attempt counts unless refunded; a prefetched claim's was not counted yet, and
        -- is counted here.
        attempts = e.attempts + e.prefetched::int
                   - CASE WHEN {_FINAL} <> v.status AND {_FINAL} = {CANCELLED} THEN 0
                          ELSE v.refund END,
        result = coalesce(v.result, e.result),
        error = CASE WHEN {_FINAL} = {CANCELLED} THEN e.error ELSE coalesce(v.error, e.error) END,
        finished_at = CASE WHEN {_FINAL} IN {FINISHED} THEN now() END,
        lease_owner = NULL, lease_expires_at = NULL, wake_pending = false, prefetched = false,
        count_at_claim = false
    FROM v
    WHERE e.id = v.id AND e.claims = v.claims AND e.status = {RUNNING}
        AND (SELECT count(*) FROM parents) >= 0  -- locks the parents before any batch row
    RETURNING e.id, e.status, e.queue, e.parent_id, e.task_name, e.error, e.attempts,
        e.run_at, v.traceback
), failures AS (
    INSERT INTO {FAILURES} (execution_id, task_name, error, traceback, attempts, failed_at)
    SELECT id, task_name, error, coalesce(traceback, ''), attempts, now()
    FROM done WHERE status = {FAILED}
)
SELECT id, status, queue, parent_id IS NOT NULL, run_at <= now() FROM done
"""


def finish_attempts(cursor: Cursor, outcomes: Sequence[Any]) -> list[StatusChange]:
    """Write ``outcomes`` (``worker.claimed.Outcome``s, in id order) in one statement; those
    whose claim lost the execution are left out of what it returns."""
    params = columns(
        outcomes,
        ids="id",
        claims="claims",
        statuses="status",
        run_ats="run_at",
        run_ins="run_in",
        results="result",
        errors="error",
        tracebacks="traceback",
        refunds="refund",
    )
    execute(cursor, FINISH_ATTEMPTS, params, prepare=True)
    return rows(cursor, StatusChange)


#: Re-queue executions whose worker stopped renewing the lease; the lost attempt counts,
#: so one that has used all its attempts fails with a record saying why (one the worker
#: held prefetched, its attempt not counted, goes back to pending and has its claims count
#: one at once from now on), and one with a
#: cancel requested ends cancelled, keeping the cancel's reason. Every lock here, the lost
#: executions' and their parents' (which a finished one wakes), is taken with SKIP LOCKED:
#: the reaper waits for no row, so it cannot deadlock whatever order it locks in; a lost
#: execution whose parent is busy is reaped by a later heartbeat.
REAP_EXPIRED = f"""
WITH expired AS (
    SELECT id, parent_id FROM {EXECUTION}
    WHERE status = {RUNNING} AND lease_expires_at < now()
), parents AS (
    SELECT id FROM {EXECUTION} WHERE id IN (SELECT parent_id FROM expired)
    FOR NO KEY UPDATE SKIP LOCKED
), lost AS (
    SELECT e.id FROM {EXECUTION} e JOIN expired x ON x.id = e.id
    WHERE e.status = {RUNNING} AND e.lease_expires_at < now()
        AND (x.parent_id IS NULL OR x.parent_id IN (SELECT id FROM parents))
    FOR NO KEY UPDATE OF e SKIP LOCKED
), requeued AS (
    UPDATE {EXECUTION} e SET
        status = CASE WHEN e.cancel_requested_at IS NOT NULL THEN {CANCELLED}
                      WHEN e.attempts >= e.max_attempts AND NOT e.prefetched THEN {FAILED}
                      ELSE {PENDING} END,
        finished_at = CASE WHEN e.cancel_requested_at IS NOT NULL
                             OR (e.attempts >= e.max_attempts AND NOT e.prefetched)
                           THEN now() END,
        run_at = now(),
        error = CASE WHEN e.cancel_requested_at IS NOT NULL THEN e.error
                     WHEN e.prefetched
                     THEN 'Worker ' || coalesce(e.lease_owner, '?') || ' stopped renewing its '
                          || 'lease before it counted an attempt (it held the execution ahead '
                          || 'of a free thread, or ran an attempt not counted yet); the worker '
                          || 'probably died. No attempt was used; from now on a claim counts one.'
                     ELSE 'Worker ' || coalesce(e.lease_owner, '?') || ' stopped renewing its '
                          || 'lease during attempt ' || e.attempts
                          || '; the worker probably died.' END,
        lease_owner = NULL, lease_expires_at = NULL, prefetched = false,
        count_at_claim = e.count_at_claim OR e.prefetched
    FROM lost WHERE e.id = lost.id
    RETURNING e.id, e.status, e.queue, e.parent_id, e.task_name, e.error, e.attempts
), failures AS (
    INSERT INTO {FAILURES} (execution_id, task_name, error, traceback, attempts, failed_at)
    SELECT id, task_name, error, '', attempts, now() FROM requeued WHERE status = {FAILED}
)
SELECT id, status, queue, parent_id IS NOT NULL, true FROM requeued
"""


def reap_expired(cursor: Cursor) -> list[StatusChange]:
    execute(cursor, REAP_EXPIRED)
    return rows(cursor, StatusChange)


#: Give back the claims this process still holds, without using up their attempts.
HAND_BACK = f"""
WITH mine AS (
    SELECT e.id FROM {EXECUTION} e
    JOIN unnest(%(ids)s::bigint[], %(claims)s::int[]) AS v(id, claims)
        ON e.id = v.id AND e.claims = v.claims
    WHERE e.lease_owner = %(worker)s AND e.status = {RUNNING}
    ORDER BY e.id
    FOR NO KEY UPDATE OF e
)
UPDATE {EXECUTION} e SET status = {PENDING},
    attempts = CASE WHEN e.prefetched THEN e.attempts ELSE greatest(e.attempts - 1, 0) END,
    prefetched = false, run_at = now(), lease_owner = NULL, lease_expires_at = NULL
FROM mine WHERE e.id = mine.id
RETURNING e.id, e.status, e.queue, e.parent_id IS NOT NULL, true
"""


def hand_back(cursor: Cursor, worker: str, keys: Iterable[tuple[int, int]]) -> list[StatusChange]:
    """Give back these claims of ``worker``'s, by (id, claims)."""
    execute(cursor, HAND_BACK, {"worker": worker, **claim_pairs(keys)})
    return rows(cursor, StatusChange)
