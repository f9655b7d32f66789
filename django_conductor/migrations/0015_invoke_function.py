"""``invoke()``'s statement becomes a PL/pgSQL function, ``django_conductor_invoke``.

A view that invokes a task on every request paid for the insert's parse and plan on every
call: Django's default ``prepare_threshold`` prepares nothing, and neither can a transaction
pooler. PostgreSQL keeps the function's plan for the session, so a call costs the insert and
its notification only. Once released, this text never changes: a different statement is a
new migration that replaces the function.
"""

from django.db import migrations

CREATE = r"""
CREATE OR REPLACE FUNCTION django_conductor_invoke(
    task text, queue text, payload jsonb, priority int, run_at timestamptz, delay float8,
    max_attempts int, limit_key text, trace_context jsonb, channel text
) RETURNS bigint
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $conductor$
#variable_conflict use_variable
DECLARE
    created bigint;
BEGIN
    -- A delay counts from the invoke's statement, as the columns' defaults do, even inside
    -- a long transaction. The concurrency key comes from the task's key spec: NULL for no
    -- limit, '' for a task-wide one, else a dotted path into the payload.
    INSERT INTO django_conductor_execution (
        task_name, queue, payload, priority, run_at, max_attempts, concurrency_key,
        trace_context
    ) VALUES (
        task, queue, payload, priority,
        coalesce(run_at, statement_timestamp() + make_interval(secs => delay)), max_attempts,
        CASE WHEN limit_key IS NULL THEN NULL WHEN limit_key = '' THEN ''
             ELSE left(coalesce(payload #>> string_to_array(limit_key, '.'), ''), 200) END,
        trace_context
    )
    RETURNING id INTO created;
    PERFORM pg_notify(channel, queue);
    RETURN created;
END
$conductor$
"""

DROP = """
DROP FUNCTION django_conductor_invoke(
    text, text, jsonb, int, timestamptz, float8, int, text, jsonb, text
)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("django_conductor", "0014_claim_function"),
    ]

    operations = [migrations.RunSQL(CREATE, reverse_sql=DROP)]
