"""The suite's own tables, created by the runner after ``migrate``: the ledger of side
effects, and a log of every change to an execution's status, claim and lease, kept by a
trigger, from which the checks know who held each lease when."""

LEDGER = "chaos_ledger"
LEASE_LOG = "chaos_lease_log"

SCHEMA = f"""
CREATE TABLE {LEDGER} (
    id bigserial PRIMARY KEY,
    execution_id bigint NOT NULL,
    step text NOT NULL,
    run text NOT NULL UNIQUE,
    pid integer NOT NULL,
    claims integer NOT NULL,
    attempt integer NOT NULL,
    -- The worker's wall clock just before the handler called ctx.step (same host, same clock
    -- as the database), and the database's clock when the side effect was written.
    called_at timestamptz NOT NULL,
    done_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    monotonic double precision NOT NULL,
    -- The execution's row as this statement saw it, and whether the step's record was
    -- already committed: true means a committed step ran again.
    db_status text,
    db_claims integer,
    db_lease_owner text,
    db_lease_expires_at timestamptz,
    step_committed boolean NOT NULL
);
CREATE INDEX ON {LEDGER} (execution_id, step);

CREATE TABLE {LEASE_LOG} (
    id bigserial PRIMARY KEY,
    execution_id bigint NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    old_status text,
    status text NOT NULL,
    old_claims integer,
    claims integer NOT NULL,
    attempts integer NOT NULL,
    lease_owner text,
    lease_expires_at timestamptz
);
CREATE INDEX ON {LEASE_LOG} (execution_id, at);

CREATE FUNCTION chaos_log_lease() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status
            OR NEW.claims IS DISTINCT FROM OLD.claims
            OR NEW.lease_owner IS DISTINCT FROM OLD.lease_owner
            OR NEW.lease_expires_at IS DISTINCT FROM OLD.lease_expires_at THEN
        INSERT INTO {LEASE_LOG} (execution_id, old_status, status, old_claims, claims, attempts,
                                 lease_owner, lease_expires_at)
        VALUES (NEW.id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END, NEW.status,
                CASE WHEN TG_OP = 'UPDATE' THEN OLD.claims END, NEW.claims, NEW.attempts,
                NEW.lease_owner, NEW.lease_expires_at);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER chaos_log_lease AFTER INSERT OR UPDATE ON django_conductor_execution
    FOR EACH ROW EXECUTE FUNCTION chaos_log_lease();
"""

INSERT_LEDGER_ROW = f"""
INSERT INTO {LEDGER} (execution_id, step, run, pid, claims, attempt, called_at, monotonic,
                      db_status, db_claims, db_lease_owner, db_lease_expires_at, step_committed)
SELECT e.id, %(step)s, %(run)s, %(pid)s, %(claims)s, %(attempt)s, to_timestamp(%(called_at)s),
    %(monotonic)s, e.status, e.claims, e.lease_owner, e.lease_expires_at,
    EXISTS (SELECT 1 FROM django_conductor_step s
            WHERE s.execution_id = e.id AND s.name = %(step)s
                AND s.finished_at IS NOT NULL AND s.error = '')
FROM django_conductor_execution e WHERE e.id = %(execution)s
"""
