"""The worker's outcome write becomes a PL/pgSQL function, ``django_conductor_finish_attempts``.

The claim loop writes the outcomes of the attempts that ended together in one statement, the
largest the worker sends: parsed and planned for every batch where nothing is prepared
(Django's default ``prepare_threshold``, a transaction pooler). The function is parsed once
per session and planned for each call, as the claim is. The statement is the one it
replaces, unchanged. Once released, this text never changes: a different outcome write is a
new migration that replaces the function.
"""

from django.db import migrations

#: How an attempt's end becomes the execution's status, read on the row as the update locks it.
FINAL = (
    "(CASE WHEN e.cancel_requested_at IS NOT NULL AND v.status IN ('pending', 'sleeping', "
    "'waiting') THEN 'cancelled' WHEN v.status = 'waiting' AND e.wake_pending THEN 'pending' "
    "ELSE v.status END)"
)

CREATE = f"""
CREATE OR REPLACE FUNCTION django_conductor_finish_attempts(
    outcome_ids bigint[], outcome_claims int[], outcome_statuses text[],
    outcome_run_ats timestamptz[], outcome_run_ins float8[], outcome_results jsonb[],
    outcome_errors text[], outcome_tracebacks text[], outcome_refunds int[]
) RETURNS TABLE (id bigint, status text, queue text, has_parent boolean, due boolean)
LANGUAGE plpgsql
-- Planned for each call, as the table stands (see django_conductor_claim); parsed once.
SET plan_cache_mode = force_custom_plan
AS $conductor$
#variable_conflict use_column
BEGIN
    -- Lock the batch's parents first, in id order (a parent's id is below its children's),
    -- as a cancel or a retry locks a tree; the batch's own rows are locked by the update.
    -- A park, retry or hand-back of an execution whose cancel is requested ends it
    -- cancelled, keeping the cancel's reason; a park to wait on a child that has finished
    -- meanwhile (wake_pending) runs again at once.
    RETURN QUERY
    WITH v AS (
        SELECT * FROM unnest(
            outcome_ids, outcome_claims, outcome_statuses, outcome_run_ats, outcome_run_ins,
            outcome_results, outcome_errors, outcome_tracebacks, outcome_refunds
        ) AS v(id, claims, status, run_at, run_in, result, error, traceback, refund)
    ), parents AS (
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
                          ELSE coalesce(
                              v.run_at, now() + make_interval(secs => v.run_in), e.run_at
                          )
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
        INSERT INTO django_conductor_failedexecution
            (execution_id, task_name, error, traceback, attempts, failed_at)
        SELECT d.id, d.task_name, d.error, coalesce(d.traceback, ''), d.attempts, now()
        FROM done d WHERE d.status = 'failed'
    )
    SELECT d.id, d.status::text, d.queue::text, d.parent_id IS NOT NULL, d.run_at <= now()
    FROM done d;
END
$conductor$
"""

DROP = """
DROP FUNCTION django_conductor_finish_attempts(
    bigint[], int[], text[], timestamptz[], float8[], jsonb[], text[], text[], int[]
)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("django_conductor", "0016_next_due_function"),
    ]

    operations = [migrations.RunSQL(CREATE, reverse_sql=DROP)]
