"""The worker's two most frequent statements become PL/pgSQL functions: the step writer's
(``django_conductor_record_steps``) and the outcome writer's
(``django_conductor_finish_attempts``).

PostgreSQL keeps the plans of a PL/pgSQL function's statements for the rest of the session,
so their batches are no longer parsed and planned one by one. That holds whatever psycopg
prepares: nothing at Django's default ``prepare_threshold``, and nothing through a
transaction pooler. Once released, these texts never change: a different statement is a new
migration that replaces the function.
"""

from django.db import migrations

RECORD_STEPS = r"""
CREATE OR REPLACE FUNCTION django_conductor_record_steps(
    ids bigint[], claims int[], names text[], kinds text[], results jsonb[], errors text[],
    started_agos float8[], finished_agos float8[], wake_ats timestamptz[], wake_ins float8[]
) RETURNS TABLE (execution_id bigint, name text, wake_at timestamptz, over boolean)
LANGUAGE plpgsql AS $conductor$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH v AS (
        SELECT * FROM unnest(
            ids, claims, names, kinds, results, errors, started_agos, finished_agos, wake_ats,
            wake_ins
        ) AS v(id, claims, name, kind, result, error, started_ago, finished_ago, wake_at, wake_in)
    ), started AS (
        SELECT v.*, now() - make_interval(secs => v.started_ago) AS started_at FROM v
    ), timed AS (
        SELECT s.*, coalesce(s.wake_at, s.started_at + make_interval(secs => s.wake_in)) AS wake
        FROM started s
    )
    INSERT INTO django_conductor_step AS step (
        execution_id, name, kind, result, error, attempt, started_at, finished_at, wake_at
    )
    -- The attempt number counts one that a prefetched claim's outcome has yet to count.
    SELECT e.id, t.name, t.kind, t.result, t.error, e.attempts + e.prefetched::int,
        t.started_at,
        CASE WHEN t.kind = 'sleep' THEN CASE WHEN t.wake <= now() THEN now() END
             ELSE now() - make_interval(secs => t.finished_ago) END,
        t.wake
    FROM timed t
    JOIN django_conductor_execution e
        ON e.id = t.id AND e.claims = t.claims AND e.status = 'running'
    ORDER BY e.id
    FOR SHARE OF e SKIP LOCKED
    ON CONFLICT (execution_id, name) DO UPDATE SET
        result = EXCLUDED.result, error = EXCLUDED.error, attempt = EXCLUDED.attempt,
        started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
        wake_at = EXCLUDED.wake_at
    RETURNING step.execution_id, step.name::text, step.wake_at, step.finished_at IS NOT NULL;
END
$conductor$
"""

DROP_RECORD_STEPS = """
DROP FUNCTION django_conductor_record_steps(
    bigint[], int[], text[], text[], jsonb[], text[], float8[], float8[], timestamptz[],
    float8[]
)
"""

#: A park, retry or hand-back of an execution whose cancel is requested ends it cancelled; a
#: park to wait on a child that has finished meanwhile (wake_pending) runs again at once.
FINAL = (
    "(CASE WHEN e.cancel_requested_at IS NOT NULL AND v.status IN ('pending', 'sleeping', "
    "'waiting') THEN 'cancelled' WHEN v.status = 'waiting' AND e.wake_pending THEN 'pending' "
    "ELSE v.status END)"
)

FINISH_ATTEMPTS = rf"""
CREATE OR REPLACE FUNCTION django_conductor_finish_attempts(
    ids bigint[], claims int[], statuses text[], run_ats timestamptz[], run_ins float8[],
    results jsonb[], errors text[], tracebacks text[], refunds int[]
) RETURNS TABLE (id bigint, status text, queue text, has_parent boolean, ready boolean)
LANGUAGE plpgsql AS $conductor$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH v AS (
        SELECT * FROM unnest(
            ids, claims, statuses, run_ats, run_ins, results, errors, tracebacks, refunds
        ) AS v(id, claims, status, run_at, run_in, result, error, traceback, refund)
    ), parents AS (
        -- The batch's parents first, in id order, as a cancel or a retry locks a tree.
        SELECT p.id FROM django_conductor_execution p
        WHERE p.id IN (
            SELECT c.parent_id FROM django_conductor_execution c
            WHERE c.id IN (SELECT v.id FROM v)
        )
        ORDER BY p.id
        FOR NO KEY UPDATE
    ), done AS (
        UPDATE django_conductor_execution e SET
            status = {FINAL},
            run_at = CASE WHEN {FINAL} = 'cancelled' THEN e.run_at
                          WHEN v.status = 'waiting' AND {FINAL} = 'pending' THEN now()
                          WHEN v.status = 'waiting' THEN v.run_at
                          ELSE coalesce(v.run_at, now() + make_interval(secs => v.run_in),
                                        e.run_at)
                     END,
            -- The attempt counts unless refunded; a prefetched claim's was not counted yet,
            -- and is counted here.
            attempts = e.attempts + e.prefetched::int
                       - CASE WHEN {FINAL} <> v.status AND {FINAL} = 'cancelled' THEN 0
                              ELSE v.refund END,
            result = coalesce(v.result, e.result),
            error = CASE WHEN {FINAL} = 'cancelled' THEN e.error
                         ELSE coalesce(v.error, e.error) END,
            finished_at = CASE WHEN {FINAL} IN ('completed', 'failed', 'cancelled')
                               THEN now() END,
            lease_owner = NULL, lease_expires_at = NULL, wake_pending = false,
            prefetched = false, count_at_claim = false
        FROM v
        WHERE e.id = v.id AND e.claims = v.claims AND e.status = 'running'
            AND (SELECT count(*) FROM parents) >= 0  -- locks the parents before any batch row
        RETURNING e.id, e.status, e.queue, e.parent_id, e.task_name, e.error, e.attempts,
            e.run_at, v.traceback
    ), failures AS (
        INSERT INTO django_conductor_failedexecution (
            execution_id, task_name, error, traceback, attempts, failed_at
        )
        SELECT done.id, done.task_name, done.error, coalesce(done.traceback, ''),
            done.attempts, now()
        FROM done WHERE done.status = 'failed'
    )
    SELECT done.id, done.status::text, done.queue::text, done.parent_id IS NOT NULL,
        done.run_at <= now()
    FROM done;
END
$conductor$
"""

DROP_FINISH_ATTEMPTS = """
DROP FUNCTION django_conductor_finish_attempts(
    bigint[], int[], text[], timestamptz[], float8[], jsonb[], text[], text[], int[]
)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("django_conductor", "0012_trace_context"),
    ]

    operations = [
        migrations.RunSQL(RECORD_STEPS, reverse_sql=DROP_RECORD_STEPS),
        migrations.RunSQL(FINISH_ATTEMPTS, reverse_sql=DROP_FINISH_ATTEMPTS),
    ]
