"""The step writer's statement becomes a PL/pgSQL function, ``django_conductor_record_steps``.

PostgreSQL keeps a PL/pgSQL function's parsed statements for the rest of the session, so
the writer's batches are no longer parsed and analysed one by one (each is still planned
for its own arrays). That holds whatever psycopg prepares: nothing at Django's default
``prepare_threshold``, and nothing through a transaction pooler. Once released, this text
never changes: a different statement is a new migration that replaces the function.
"""

from django.db import migrations

CREATE = r"""
CREATE OR REPLACE FUNCTION django_conductor_record_steps(
    ids bigint[], claims int[], names text[], kinds text[], results jsonb[], errors text[],
    started_agos float8[], finished_agos float8[], wake_ats timestamptz[], wake_ins float8[]
) RETURNS TABLE (execution_id bigint, name text, wake_at timestamptz, over boolean)
LANGUAGE plpgsql
-- Planned for each call's own arrays: a generic plan, which cannot see how many records a
-- batch holds, was slower for batches of 25 to 50.
SET plan_cache_mode = force_custom_plan
AS $conductor$
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

DROP = """
DROP FUNCTION django_conductor_record_steps(
    bigint[], int[], text[], text[], jsonb[], text[], float8[], float8[], timestamptz[],
    float8[]
)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("django_conductor", "0012_trace_context"),
    ]

    operations = [migrations.RunSQL(CREATE, reverse_sql=DROP)]
