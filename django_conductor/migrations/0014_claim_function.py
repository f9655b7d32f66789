"""The worker's claim becomes one PL/pgSQL function, ``django_conductor_claim``.

A claim used to be up to four round trips (a transaction locking the concurrency limits, the
claim of limited tasks, its commit, then the claim of the rest): most of an idle worker's
pickup. The function does all of it in one statement, in the worker's autocommit, parsed
once per session whatever psycopg prepares (nothing at Django's default
``prepare_threshold``, nothing through a transaction pooler). The limits are locked only
for that statement, so a worker frozen between claims holds none. Each step keeps its picks
in an array, and the update reads its rows by primary key. Once released, this text never
changes: a different claim is a new migration.
"""

from django.db import migrations

CREATE = r"""
CREATE OR REPLACE FUNCTION django_conductor_claim(
    worker text, lease float8, queues text[], tasks text[], places int, idle int
) RETURNS TABLE (
    id bigint, task_name text, queue text, event_name text, payload text, attempts int,
    max_attempts int, claims int, cancel_requested boolean, steps text,
    claimed_at timestamptz, prefetched boolean, scheduled_at timestamptz,
    run_at timestamptz, trace_context text
)
LANGUAGE plpgsql
-- Planned for each call, as the tables stand: a plan kept for the session would be one
-- made when a table was empty (a worker started on a fresh queue), which reads it whole
-- once it has grown. Parsed once per session all the same.
SET plan_cache_mode = force_custom_plan
AS $conductor$
#variable_conflict use_column
DECLARE
    limited text[];
    allowed int[];
    picked bigint[] := '{}';
BEGIN
    -- 1. For idle threads, executions of limited tasks first, so that a flood of unlimited
    -- work cannot starve them. Lock the limits of those with ready executions (one claimer
    -- per limit at a time, so that its count of running executions is not stale; a limit
    -- another claim holds is skipped), then claim, in a new snapshot, no more per key than
    -- its limit less those running now. All start now.
    IF idle > 0 THEN
        SELECT array_agg(l.task_name::text), array_agg(l.concurrency)
        INTO limited, allowed
        FROM (
            SELECT l.task_name, l.concurrency FROM django_conductor_concurrencylimit l
            WHERE l.task_name = ANY(tasks) AND l.concurrency IS NOT NULL
                AND EXISTS (
                    SELECT FROM django_conductor_execution e
                    WHERE e.status IN ('pending', 'sleeping', 'waiting')
                        AND e.concurrency_key IS NOT NULL AND e.task_name = l.task_name
                        AND e.run_at <= now()
                        AND (queues IS NULL OR e.queue = ANY(queues))
                )
            ORDER BY l.task_name
            FOR NO KEY UPDATE OF l SKIP LOCKED
        ) l;
    END IF;
    IF limited IS NOT NULL THEN
        picked := ARRAY(
            WITH limits AS (
                SELECT * FROM unnest(limited, allowed) AS l(task_name, n)
            ), running AS (
                SELECT e.task_name, e.concurrency_key, count(*) AS n
                FROM django_conductor_execution e
                WHERE e.status = 'running' AND e.concurrency_key IS NOT NULL
                    AND e.task_name = ANY(limited)
                GROUP BY e.task_name, e.concurrency_key
            ), ready AS (
                SELECT r.*, limits.task_name, limits.n AS allowed
                FROM limits CROSS JOIN LATERAL (
                    SELECT e.id, e.concurrency_key, e.priority, e.run_at
                    FROM django_conductor_execution e
                    WHERE e.status IN ('pending', 'sleeping', 'waiting')
                        AND e.concurrency_key IS NOT NULL
                        AND e.task_name = limits.task_name AND e.run_at <= now()
                        AND (queues IS NULL OR e.queue = ANY(queues))
                        AND NOT EXISTS (
                            SELECT FROM running
                            WHERE running.task_name = limits.task_name
                                AND running.concurrency_key = e.concurrency_key
                                AND running.n >= limits.n
                        )
                    ORDER BY e.priority DESC, e.run_at, e.id
                    LIMIT greatest(100, idle * 4)
                    FOR UPDATE SKIP LOCKED
                ) r
            )
            SELECT ranked.id FROM (
                SELECT ready.*, coalesce(running.n, 0) + row_number() OVER (
                    PARTITION BY ready.task_name, ready.concurrency_key
                    ORDER BY ready.priority DESC, ready.run_at, ready.id
                ) AS would_run
                FROM ready LEFT JOIN running USING (task_name, concurrency_key)
            ) ranked
            WHERE ranked.would_run <= ranked.allowed
            ORDER BY ranked.priority DESC, ranked.run_at, ranked.id
            LIMIT idle
        );
    END IF;
    -- 2. The rest, read level by level of priority (one probe of conductor_claimable per
    -- level, highest first), each level as one range of that index from its ready end, so
    -- that parked work (sleeping, delayed, backing off, waiting) is never read through. No
    -- ORDER BY: the lateral join is a nested loop over the levels in the order the walk
    -- makes them, so the LIMIT stops the walk, locking no row it does not claim, as soon as
    -- it has enough. Only tasks this worker has: in a rolling deploy, the others wait for a
    -- worker that has them, instead of failing for want of a handler.
    IF places > cardinality(picked) THEN
        picked := picked || ARRAY(
            WITH RECURSIVE levels(priority) AS (
                (SELECT e.priority FROM django_conductor_execution e
                 WHERE e.status IN ('pending', 'sleeping', 'waiting')
                    AND e.concurrency_key IS NULL
                 ORDER BY e.priority DESC LIMIT 1)
                UNION ALL
                SELECT (SELECT e.priority FROM django_conductor_execution e
                        WHERE e.status IN ('pending', 'sleeping', 'waiting')
                            AND e.concurrency_key IS NULL AND e.priority < l.priority
                        ORDER BY e.priority DESC LIMIT 1)
                FROM levels l WHERE l.priority IS NOT NULL
            )
            SELECT ready.id FROM levels CROSS JOIN LATERAL (
                SELECT e.id FROM django_conductor_execution e
                WHERE e.status IN ('pending', 'sleeping', 'waiting')
                    AND e.concurrency_key IS NULL AND e.priority = levels.priority
                    AND e.run_at <= now() AND (queues IS NULL OR e.queue = ANY(queues))
                    AND e.task_name = ANY(tasks)
                ORDER BY e.priority DESC, e.run_at, e.id
                LIMIT places - cardinality(picked)
                FOR UPDATE SKIP LOCKED
            ) ready
            WHERE levels.priority IS NOT NULL
            LIMIT places - cardinality(picked)
        );
    END IF;
    -- 3. Take them under this worker's lease, in pick order. The first ``idle``, for the
    -- threads that are free now, count their attempt here; the rest are held ahead of a
    -- thread (prefetched) and their attempt is counted by its outcome, so that a worker
    -- killed while holding them costs them nothing. One with a claim lost that way
    -- (count_at_claim, until an attempt ends) counts here whatever its place: an execution
    -- whose handler kills its worker still runs out of attempts.
    RETURN QUERY
    WITH claimed AS (
        UPDATE django_conductor_execution e
        SET status = 'running', claims = e.claims + 1,
            attempts = e.attempts + (p.place <= idle OR e.count_at_claim)::int,
            prefetched = p.place > idle AND NOT e.count_at_claim,
            lease_owner = worker, lease_expires_at = now() + make_interval(secs => lease),
            started_at = coalesce(e.started_at, now()), wake_pending = false
        FROM unnest(picked) WITH ORDINALITY AS p(id, place)
        WHERE e.id = p.id
        RETURNING p.place, e.id, e.task_name::text, e.queue::text, e.event_name::text,
            e.payload::text, e.attempts, e.max_attempts, e.claims,
            e.cancel_requested_at IS NOT NULL AS cancel_requested,
            (SELECT json_agg(json_build_object(
                'name', s.name, 'kind', s.kind, 'result', s.result, 'error', s.error,
                'finished', s.finished_at IS NOT NULL, 'wake_at', s.wake_at,
                'child_id', s.child_id
             ))::text FROM django_conductor_step s WHERE s.execution_id = e.id) AS steps,
            e.prefetched, e.scheduled_at, e.run_at, e.trace_context::text
    )
    SELECT c.id, c.task_name, c.queue, c.event_name, c.payload, c.attempts, c.max_attempts,
        c.claims, c.cancel_requested, c.steps, now(), c.prefetched, c.scheduled_at,
        c.run_at, c.trace_context
    FROM claimed c ORDER BY c.place;
END
$conductor$
"""

DROP = "DROP FUNCTION django_conductor_claim(text, float8, text[], text[], int, int)"


class Migration(migrations.Migration):
    dependencies = [
        ("django_conductor", "0013_record_steps_function"),
    ]

    operations = [migrations.RunSQL(CREATE, reverse_sql=DROP)]
