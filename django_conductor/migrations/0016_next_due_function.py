"""The idle worker's look for the next due execution becomes a PL/pgSQL function,
``django_conductor_next_due``.

An idle worker sends it after every claim that finds nothing, before it sleeps, and a
notification that comes meanwhile waits for it. PostgreSQL keeps the function parsed for
the session. Once released, this text never changes: a different statement is a new
migration that replaces the function.
"""

from django.db import migrations

CREATE = r"""
CREATE OR REPLACE FUNCTION django_conductor_next_due(queues text[], tasks text[])
RETURNS float8
LANGUAGE plpgsql
-- Planned for each call, as the table stands (see django_conductor_claim); parsed once.
SET plan_cache_mode = force_custom_plan
AS $conductor$
#variable_conflict use_column
BEGIN
    -- The priorities that have claimable executions, highest first; in each, the first
    -- execution due after now, read from the index range's start, so that no parked work is
    -- read through. NULL when nothing is due.
    RETURN (
        WITH RECURSIVE levels(priority) AS (
            (SELECT e.priority FROM django_conductor_execution e
             WHERE e.status IN ('pending', 'sleeping', 'waiting') AND e.concurrency_key IS NULL
             ORDER BY e.priority DESC LIMIT 1)
            UNION ALL
            SELECT (SELECT e.priority FROM django_conductor_execution e
                    WHERE e.status IN ('pending', 'sleeping', 'waiting')
                        AND e.concurrency_key IS NULL AND e.priority < l.priority
                    ORDER BY e.priority DESC LIMIT 1)
            FROM levels l WHERE l.priority IS NOT NULL
        )
        SELECT extract(epoch FROM min(due.run_at) - now())::float8
        FROM levels CROSS JOIN LATERAL (
            SELECT e.run_at FROM django_conductor_execution e
            WHERE e.status IN ('pending', 'sleeping', 'waiting')
                AND e.concurrency_key IS NULL AND e.priority = levels.priority
                AND e.run_at > now() AND (queues IS NULL OR e.queue = ANY(queues))
                AND e.task_name = ANY(tasks)
            ORDER BY e.priority DESC, e.run_at, e.id
            LIMIT 1
        ) due
        WHERE levels.priority IS NOT NULL
    );
END
$conductor$
"""

DROP = "DROP FUNCTION django_conductor_next_due(text[], text[])"


class Migration(migrations.Migration):
    dependencies = [
        ("django_conductor", "0015_invoke_function"),
    ]

    operations = [migrations.RunSQL(CREATE, reverse_sql=DROP)]
