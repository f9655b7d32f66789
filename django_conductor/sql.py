"""The hot-path statements, in plain SQL. Every write a worker makes on an execution it
runs is fenced on ``claims``: a worker whose lease was taken over changes nothing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

EXECUTION = "django_conductor_execution"
STEP = "django_conductor_step"
FAILED = "django_conductor_failedexecution"
HEARTBEAT = "django_conductor_workerheartbeat"

#: Channel a worker listens on; the payload is the queue that has new work.
READY_CHANNEL = "django_conductor_ready"
#: Channel ``ExecutionHandle.wait`` listens on; the payload is comma-separated ids.
FINISHED_CHANNEL = "django_conductor_finished"
#: Channel workers listen on to learn at once that a running execution was cancelled.
CANCEL_CHANNEL = "django_conductor_cancel"

#: A recorded step as ``context.RecordedStep.from_row`` reads it.
_STEP_ROW = (
    "json_build_array(s.name, s.kind, s.result, s.error, s.finished_at IS NOT NULL, s.wake_at, "
    "s.child_id)"
)

_CLAIMABLE = "status IN ('pending', 'sleeping', 'waiting')"

#: The priorities that have claimable executions, highest first, one probe of
#: conductor_claimable each. A claim, or the search for the next due time, then reads each
#: level as one range of that index starting at its ready (or next due) end, so parked work
#: at a higher priority (sleeping, delayed, backing off, waiting) is never read through:
#: their cost does not grow with parked work.
_LEVELS = f"""
levels(priority) AS (
    (SELECT priority FROM {EXECUTION} WHERE {_CLAIMABLE} ORDER BY priority DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT e.priority FROM {EXECUTION} e
            WHERE e.{_CLAIMABLE} AND e.priority < l.priority ORDER BY e.priority DESC LIMIT 1)
    FROM levels l WHERE l.priority IS NOT NULL
)"""

_CLAIM = f"""
WITH RECURSIVE {_LEVELS}, picked AS (
    -- No ORDER BY: the lateral join is a nested loop over the levels in the order the walk
    -- makes them, highest first, each level's rows in claim order; so the LIMIT stops the
    -- walk, and locks no row it does not claim, as soon as it has enough.
    SELECT ready.id, row_number() OVER () AS place FROM levels CROSS JOIN LATERAL (
        SELECT id FROM {EXECUTION}
        WHERE {_CLAIMABLE} AND priority = levels.priority AND run_at <= now() {{queue_filter}}
            -- Only tasks this worker has: in a rolling deploy, the others wait for a
            -- worker that has them, instead of failing here for want of a handler.
            AND task_name = ANY(%(tasks)s::text[])
        ORDER BY priority DESC, run_at, id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) ready
    WHERE levels.priority IS NOT NULL
    LIMIT %(limit)s
), claimed AS (
    -- The first ``start``, for the threads that are free now, count their attempt here; the
    -- rest are held ahead of a thread (prefetched) and their attempt is counted by its
    -- outcome, so that a worker killed while holding them costs them nothing. One with a
    -- claim lost that way (count_at_claim, until an attempt ends) counts here whatever its
    -- place: an execution whose handler kills its worker still runs out of attempts.
    UPDATE {EXECUTION} e
    SET status = 'running', claims = e.claims + 1,
        attempts = e.attempts + (picked.place <= %(start)s OR e.count_at_claim)::int,
        prefetched = picked.place > %(start)s AND NOT e.count_at_claim,
        lease_owner = %(worker)s, lease_expires_at = now() + make_interval(secs => %(lease)s),
        started_at = coalesce(e.started_at, now()), wake_pending = false
    FROM picked WHERE e.id = picked.id
    RETURNING e.id, e.task_name, e.queue, e.event_name, e.payload::text, e.attempts,
        e.max_attempts, e.claims, e.cancel_requested_at IS NOT NULL AS cancel_requested,
        (SELECT json_agg({_STEP_ROW})::text FROM {STEP} s WHERE s.execution_id = e.id) AS steps,
        e.priority, e.run_at, e.prefetched
)
SELECT id, task_name, queue, event_name, payload, attempts, max_attempts, claims,
    cancel_requested, steps, now() AS claimed_at, prefetched
FROM claimed ORDER BY priority DESC, run_at, id
"""
CLAIM_ANY_QUEUE = _CLAIM.format(queue_filter="")
CLAIM_QUEUES = _CLAIM.format(queue_filter="AND queue = ANY(%(queues)s::text[])")


#: The steps of claimed executions read again after the claim: the claim reads steps from
#: its statement's snapshot, and a child finishing just before the claim locked its parent
#: may have recorded the parent's invoke step after that snapshot was taken.
STEPS_OF = f"""
SELECT s.execution_id, json_agg({_STEP_ROW})::text FROM {STEP} s
WHERE s.execution_id = ANY(%(ids)s::bigint[]) GROUP BY s.execution_id
"""

_NEXT_DUE = f"""
WITH RECURSIVE {_LEVELS}
SELECT extract(epoch FROM min(due.run_at) - now()) FROM levels CROSS JOIN LATERAL (
    SELECT run_at FROM {EXECUTION}
    WHERE {_CLAIMABLE} AND priority = levels.priority AND run_at > now() {{queue_filter}}
        AND task_name = ANY(%(tasks)s::text[])
    ORDER BY priority DESC, run_at, id
    LIMIT 1
) due
WHERE levels.priority IS NOT NULL
"""
#: Seconds until the next sleep, retry or delayed execution is due, so an idle worker
#: wakes for it instead of waiting out the poll interval.
NEXT_DUE_ANY_QUEUE = _NEXT_DUE.format(queue_filter="")
NEXT_DUE_QUEUES = _NEXT_DUE.format(queue_filter="AND queue = ANY(%(queues)s::text[])")

#: How an attempt's end becomes the execution's status, read on the row as the update locked
#: it: a park, retry or hand-back of an execution whose cancel is requested ends it cancelled;
#: a park to wait on a child that has finished meanwhile (wake_pending) runs again at once.
_FINAL = (
    "(CASE WHEN e.cancel_requested_at IS NOT NULL AND v.status IN ('pending', 'sleeping', "
    "'waiting') THEN 'cancelled' WHEN v.status = 'waiting' AND e.wake_pending THEN 'pending' "
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
        run_at = CASE WHEN {_FINAL} = 'cancelled' THEN e.run_at
                      WHEN v.status = 'waiting' AND {_FINAL} = 'pending' THEN now()
                      WHEN v.status = 'waiting' THEN v.run_at
                      ELSE coalesce(v.run_at, now() + make_interval(secs => v.run_in), e.run_at)
                 END,
        -- The attempt counts unless refunded; a prefetched claim's was not counted yet, and
        -- is counted here.
        attempts = e.attempts + e.prefetched::int
                   - CASE WHEN {_FINAL} <> v.status AND {_FINAL} = 'cancelled' THEN 0
                          ELSE v.refund END,
        result = coalesce(v.result, e.result),
        error = CASE WHEN {_FINAL} = 'cancelled' THEN e.error ELSE coalesce(v.error, e.error) END,
        finished_at = CASE WHEN {_FINAL} IN ('completed', 'failed', 'cancelled') THEN now() END,
        lease_owner = NULL, lease_expires_at = NULL, wake_pending = false, prefetched = false,
        count_at_claim = false
    FROM v
    WHERE e.id = v.id AND e.claims = v.claims AND e.status = 'running'
        AND (SELECT count(*) FROM parents) >= 0  -- locks the parents before any batch row
    RETURNING e.id, e.status, e.queue, e.parent_id, e.task_name, e.error, e.attempts,
        e.run_at, v.traceback
), failures AS (
    INSERT INTO {FAILED} (execution_id, task_name, error, traceback, attempts, failed_at)
    SELECT id, task_name, error, coalesce(traceback, ''), attempts, now()
    FROM done WHERE status = 'failed'
)
SELECT id, status, queue, parent_id IS NOT NULL, run_at <= now() FROM done
"""

#: Record a finished child's outcome as its parent's step and wake the parent; a parent
#: still running is flagged so that it does not park after missing the wake-up. An outcome
#: is recorded once: a step already finished (a timeout came first) is left as it is. A child
#: cancelled while its parent has a cancel requested went with its parent's cancel, which is
#: no outcome for the parent to see: the step stays open, and retrying the parent retries
#: that child. The caller holds the parents' rows (locked with the children, in id order).
WAKE_PARENTS = f"""
WITH finished AS (
    UPDATE {STEP} s SET
        result = CASE WHEN c.status = 'completed' THEN c.result END,
        error = CASE WHEN c.status = 'completed' THEN ''
                     ELSE coalesce(nullif(c.error, ''), c.status) END,
        finished_at = now()
    FROM {EXECUTION} c JOIN {EXECUTION} p ON p.id = c.parent_id
    WHERE c.id = ANY(%(ids)s::bigint[]) AND s.child_id = c.id AND s.execution_id = p.id
        AND s.finished_at IS NULL AND c.status IN ('completed', 'failed', 'cancelled')
        AND NOT (c.status = 'cancelled' AND p.cancel_requested_at IS NOT NULL)
    RETURNING s.execution_id
)
UPDATE {EXECUTION} p SET
    status = CASE WHEN p.status = 'waiting' THEN 'pending' ELSE p.status END,
    run_at = CASE WHEN p.status = 'waiting' THEN now() ELSE p.run_at END,
    wake_pending = p.status = 'running'
FROM finished f WHERE p.id = f.execution_id
RETURNING p.id, p.status, p.queue
"""

#: Record the steps of several executions in one statement, each only while its claim
#: still owns the execution; returns the recorded (execution, name) pairs with the wake
#: time and whether the step is over. A row another session keeps locked is skipped: its
#: record is left out (``STILL_HELD`` tells it from a lost claim) and waits for the next
#: batch, instead of holding back everyone else's. Times are the database's: a record says
#: how many seconds ago it started (and ended), a sleep how long after its start it wakes
#: (or when). A pair already there is this claim's own earlier write (FOR SHARE keeps other
#: claims out), written again after a lost connection, or a step that raised in an earlier
#: attempt and has now run again: either way the new record replaces it.
RECORD_STEPS = f"""
WITH v AS (
    SELECT * FROM unnest(
        %(ids)s::bigint[], %(claims)s::int[], %(names)s::text[], %(kinds)s::text[],
        %(results)s::jsonb[], %(errors)s::text[], %(started_agos)s::float8[],
        %(finished_agos)s::float8[], %(wake_ats)s::timestamptz[], %(wake_ins)s::float8[]
    ) AS v(id, claims, name, kind, result, error, started_ago, finished_ago, wake_at, wake_in)
), started AS (
    SELECT v.*, now() - make_interval(secs => v.started_ago) AS started_at FROM v
), timed AS (
    SELECT s.*, coalesce(s.wake_at, s.started_at + make_interval(secs => s.wake_in)) AS wake
    FROM started s
)
INSERT INTO {STEP} (execution_id, name, kind, result, error, attempt, started_at, finished_at,
                    wake_at)
-- The attempt number counts one that a prefetched claim's outcome has yet to count.
SELECT e.id, t.name, t.kind, t.result, t.error, e.attempts + e.prefetched::int, t.started_at,
    CASE WHEN t.kind = 'sleep' THEN CASE WHEN t.wake <= now() THEN now() END
         ELSE now() - make_interval(secs => t.finished_ago) END,
    t.wake
FROM timed t JOIN {EXECUTION} e ON e.id = t.id AND e.claims = t.claims AND e.status = 'running'
ORDER BY e.id
FOR SHARE OF e SKIP LOCKED
ON CONFLICT (execution_id, name) DO UPDATE SET
    result = EXCLUDED.result, error = EXCLUDED.error, attempt = EXCLUDED.attempt,
    started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
    wake_at = EXCLUDED.wake_at
RETURNING execution_id, name, wake_at, finished_at IS NOT NULL
"""

#: Which of the given claims (``ids``, ``claims``) this worker still holds.
STILL_HELD = f"""
SELECT e.id, e.claims FROM {EXECUTION} e
JOIN unnest(%(ids)s::bigint[], %(claims)s::int[]) AS v(id, claims)
    ON e.id = v.id AND e.claims = v.claims
WHERE e.status = 'running' AND e.lease_expires_at > now()
"""

#: Create a child execution and the parent's step that waits for it, in one statement;
#: the unique (parent, parent_step) pair makes a replay unable to create a second child.
#: A parent with a cancel requested gets no child: a cancel that committed first would not
#: reach it. Returns (cancel requested, step created, the deadline ``timeout`` seconds from
#: the database's now, NULL for none), or nothing when the claim lost the execution.
START_CHILD = f"""
WITH owner AS (
    SELECT id, attempts + prefetched::int AS attempts,
        cancel_requested_at IS NOT NULL AS cancelling FROM {EXECUTION}
    WHERE id = %(id)s AND claims = %(claims)s AND status = 'running'
    FOR SHARE
), child AS (
    INSERT INTO {EXECUTION} (task_name, queue, payload, priority, max_attempts, parent_id,
                             parent_step)
    SELECT %(task_name)s, %(queue)s, %(payload)s::jsonb, %(priority)s, %(max_attempts)s,
           owner.id, %(name)s
    FROM owner WHERE NOT owner.cancelling
    ON CONFLICT (parent_id, parent_step) WHERE parent_id IS NOT NULL
    DO UPDATE SET parent_step = EXCLUDED.parent_step
    RETURNING id, queue
), step AS (
    INSERT INTO {STEP} (execution_id, name, kind, attempt, started_at, wake_at, child_id)
    SELECT owner.id, %(name)s, 'invoke', owner.attempts, now(),
        now() + make_interval(secs => %(timeout)s::float8), child.id
    FROM owner, child
    ON CONFLICT (execution_id, name) DO NOTHING
    RETURNING wake_at, pg_notify('{READY_CHANNEL}', %(queue)s)
)
SELECT owner.cancelling, EXISTS (SELECT FROM step), (SELECT wake_at FROM step) FROM owner
"""

#: A child invoke's timeout, recorded as the outcome of the parent's step (fenced on the
#: parent's claim) in the transaction that then cancels the child: whichever of the timeout
#: and the child's end is recorded first is the step's outcome for good. Returns (recorded,
#: the child's id), or nothing when the claim lost the execution.
TIME_OUT_CHILD = f"""
WITH owner AS (
    SELECT id FROM {EXECUTION}
    WHERE id = %(id)s AND claims = %(claims)s AND status = 'running'
    FOR NO KEY UPDATE
), timed_out AS (
    UPDATE {STEP} s SET error = %(error)s, finished_at = now()
    FROM owner
    WHERE s.execution_id = owner.id AND s.name = %(name)s AND s.kind = 'invoke'
        AND s.finished_at IS NULL
    RETURNING s.child_id
)
SELECT EXISTS (SELECT FROM timed_out), (SELECT child_id FROM timed_out) FROM owner
"""

#: Renew the leases this process holds, by claim (a restarted worker that reuses an id must
#: not keep a dead one's leases alive, nor a re-claim its lost predecessor's), and only while
#: they last: an expired lease is another worker's to take. Rows are locked in id order, as
#: everywhere. Returns which of them were cancelled.
_RENEW_LEASES = f"""
WITH mine AS (
    SELECT e.id FROM {EXECUTION} e
    JOIN unnest(%(ids)s::bigint[], %(claims)s::int[]) AS v(id, claims)
        ON e.id = v.id AND e.claims = v.claims
    WHERE e.lease_owner = %(worker)s AND e.status = 'running' AND e.lease_expires_at > now()
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
    WHERE status IN ('pending', 'sleeping', 'waiting') AND run_at <= now()
        AND task_name <> ALL(%(tasks)s::text[])
    LIMIT 10000
) ready GROUP BY task_name ORDER BY task_name
"""

FORGET_WORKER = f"DELETE FROM {HEARTBEAT} WHERE worker_id = %(worker)s"

#: Heartbeats older than a few leases belong to workers that are gone.
FORGET_DEAD_WORKERS = f"""
DELETE FROM {HEARTBEAT} WHERE last_seen_at < now() - make_interval(secs => %(age)s)
"""

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
    WHERE status = 'running' AND lease_expires_at < now()
), parents AS (
    SELECT id FROM {EXECUTION} WHERE id IN (SELECT parent_id FROM expired)
    FOR NO KEY UPDATE SKIP LOCKED
), lost AS (
    SELECT e.id FROM {EXECUTION} e JOIN expired x ON x.id = e.id
    WHERE e.status = 'running' AND e.lease_expires_at < now()
        AND (x.parent_id IS NULL OR x.parent_id IN (SELECT id FROM parents))
    FOR NO KEY UPDATE OF e SKIP LOCKED
), requeued AS (
    UPDATE {EXECUTION} e SET
        status = CASE WHEN e.cancel_requested_at IS NOT NULL THEN 'cancelled'
                      WHEN e.attempts >= e.max_attempts AND NOT e.prefetched THEN 'failed'
                      ELSE 'pending' END,
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
    INSERT INTO {FAILED} (execution_id, task_name, error, traceback, attempts, failed_at)
    SELECT id, task_name, error, '', attempts, now() FROM requeued WHERE status = 'failed'
)
SELECT id, status, queue, parent_id IS NOT NULL, true FROM requeued
"""

#: Give back the claims this process still holds, without using up their attempts.
HAND_BACK = f"""
WITH mine AS (
    SELECT e.id FROM {EXECUTION} e
    JOIN unnest(%(ids)s::bigint[], %(claims)s::int[]) AS v(id, claims)
        ON e.id = v.id AND e.claims = v.claims
    WHERE e.lease_owner = %(worker)s AND e.status = 'running'
    ORDER BY e.id
    FOR NO KEY UPDATE OF e
)
UPDATE {EXECUTION} e SET status = 'pending',
    attempts = CASE WHEN e.prefetched THEN e.attempts ELSE greatest(e.attempts - 1, 0) END,
    prefetched = false, run_at = now(), lease_owner = NULL, lease_expires_at = NULL
FROM mine WHERE e.id = mine.id
RETURNING e.id, e.queue
"""

NOTIFY = "SELECT pg_notify(%s, %s)"


def columns(records: list[Any], **fields: str) -> dict[str, list[Any]]:
    """One array per statement parameter, for the ``unnest(...)`` batch statements:
    ``columns(batch, ids="id")`` gives ``{"ids": [record.id for record in batch]}``."""
    return {param: [getattr(r, attribute) for r in records] for param, attribute in fields.items()}


def claim_pairs(keys: Iterable[tuple[int, int]]) -> dict[str, list[int]]:
    """The ``ids`` and ``claims`` arrays of claim-fenced batch statements, in id order, the
    order every multi-row lock takes."""
    keys = sorted(keys)
    return {"ids": [key[0] for key in keys], "claims": [key[1] for key in keys]}


def server_cursor(conn: psycopg.Connection) -> psycopg.Cursor:
    """A cursor that binds parameters on the server, so that hot statements can be
    prepared once per connection (Django's connections bind on the client by default)."""
    return psycopg.Cursor(conn)
