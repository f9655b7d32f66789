"""Leases, fencing and database loss, with in-process workers and real connections."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models.functions import Now

from django_conductor import invoke
from django_conductor.models import Execution, FailedExecution, Step, WorkerHeartbeat
from django_conductor.registry import registry
from django_conductor.step_writer import StepRecord, StepWriter
from django_conductor.store import claims, outcomes, steps
from django_conductor.store.notify import connect_listener
from django_conductor.worker import Worker
from django_conductor.worker.claimed import Outcome
from tests.conftest import wait_until
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db(transaction=True)


TASKS = sorted(task.name for task in registry)


def claim_as(worker_id, lease=30.0):
    """Claim like a worker would, on a connection of its own, and return the claimed row."""
    with connect_listener() as conn:
        (row,) = claims.claim(
            conn.cursor(), places=1, idle=1, worker=worker_id, lease=lease, queues=[], tasks=TASKS
        )
        return row


def test_expired_lease_is_requeued_counting_the_lost_attempt(run_worker):
    handle = invoke("record", "x")
    row = claim_as("dead-worker", lease=0.01)
    assert row[0] == handle.id
    time.sleep(0.05)
    run_worker()  # its first heartbeat reaps, then it runs the execution
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.attempts, execution.claims) == ("completed", 2, 2)
    assert SideEffect.objects.filter(kind="ran").count() == 1


def test_expired_lease_on_the_last_attempt_fails_with_a_record(run_worker):
    handle = invoke("record", "x")
    Execution.objects.filter(pk=handle.id).update(max_attempts=1)
    claim_as("dead-worker", lease=0.01)
    time.sleep(0.05)
    run_worker()
    execution = Execution.objects.get(pk=handle.id)
    assert execution.status == "failed"
    assert "dead-worker stopped renewing its lease" in execution.error
    assert FailedExecution.objects.get(execution=execution).attempts == 1


def test_a_worker_that_lost_its_lease_cannot_write_steps_or_outcomes(run_worker):
    handle = invoke("record", "x")
    stale = claim_as("slow-worker", lease=0.01)
    time.sleep(0.05)
    run_worker()
    assert Execution.objects.get(pk=handle.id).status == "completed"

    stale_claims = stale[7]
    with connect_listener() as conn:
        step = conn.execute(
            steps.RECORD_STEPS,
            {
                "ids": [handle.id],
                "claims": [stale_claims],
                "names": ["late"],
                "kinds": ["step"],
                "results": ["1"],
                "errors": [""],
                "started_agos": [0.0],
                "finished_agos": [0.0],
                "wake_ats": [None],
                "wake_ins": [None],
            },
        )
        assert step.fetchall() == []
        outcome = conn.execute(
            outcomes.FINISH_ATTEMPTS,
            {
                "ids": [handle.id],
                "claims": [stale_claims],
                "statuses": ["failed"],
                "run_ats": [None],
                "run_ins": [None],
                "results": [None],
                "errors": ["late failure"],
                "tracebacks": [""],
                "refunds": [0],
            },
        )
        assert outcome.fetchall() == []
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.error) == ("completed", "")
    assert not Step.objects.filter(name="late").exists()
    assert not FailedExecution.objects.exists()


def test_heartbeat_renews_leases_and_records_the_worker(transactional_db, settings):
    settings.CONDUCTOR_LEASE = 2
    settings.CONDUCTOR_HEARTBEAT_INTERVAL = 0.2
    handle = invoke("slow", 1.0)
    worker = Worker(install_signal_handlers=False, concurrency=1, worker_id="beating")
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_until(lambda: SideEffect.objects.filter(kind="started").exists())
        first = Execution.objects.get(pk=handle.id).lease_expires_at
        wait_until(lambda: Execution.objects.get(pk=handle.id).lease_expires_at > first, 3)
        beat = WorkerHeartbeat.objects.get(worker_id="beating")
        assert beat.pid > 0 and beat.concurrency == 1 and beat.queues == []
        wait_until(lambda: Execution.objects.get(pk=handle.id).status == "completed", 5)
    finally:
        worker.stop()
        thread.join(10)
    assert not WorkerHeartbeat.objects.filter(worker_id="beating").exists()


def test_worker_survives_losing_its_database_connections(transactional_db, settings):
    settings.CONDUCTOR_POLL_INTERVAL = 0.2
    worker = Worker(install_signal_handlers=False, concurrency=2, worker_id="survivor")
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        first = invoke("echo", 1)
        assert first.wait(5)["echo"] == 1
        with connection.cursor() as cursor:  # cut every other session to this database
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        second = invoke("echo", 2)
        assert second.wait(15)["echo"] == 2
    finally:
        worker.stop()
        thread.join(10)
    assert not thread.is_alive()


def test_burst_worker_leaves_future_work_alone(run_worker):
    later = invoke("echo", 1, delay=timedelta(hours=1))
    worker = run_worker()
    assert worker.holdings.processed == 0
    assert Execution.objects.get(pk=later.id).status == "pending"


def test_a_restarted_worker_reusing_an_id_does_not_keep_dead_leases_alive(run_worker):
    handle = invoke("record", "x")
    claim_as("reused-id", lease=0.5)
    time.sleep(0.6)
    run_worker(worker_id="reused-id")
    assert Execution.objects.get(pk=handle.id).status == "completed"


def claim_with(worker):
    """Claim what is ready as ``worker`` would, without starting its threads."""
    worker.claiming.claim()
    return sorted(worker.holdings.running)


def renew(worker):
    with connect_listener() as conn:
        worker.heartbeat.renew_leases(conn)


def lease_of(execution_id):
    return Execution.objects.get(pk=execution_id).lease_expires_at


class RowLock:
    """Another session holding one execution row locked until released."""

    def __init__(self, execution_id, mode="FOR SHARE"):
        self.conn = connect_listener()
        self.conn.autocommit = False
        self.conn.execute(
            f"SELECT id FROM django_conductor_execution WHERE id = %s {mode}", [execution_id]
        )

    def release(self):
        self.conn.rollback()
        self.conn.close()


def test_lease_renewal_waits_for_a_step_record_instead_of_skipping_it(transactional_db):
    handle = invoke("record", "x")
    worker = Worker(install_signal_handlers=False, concurrency=1, worker_id="renewer")
    claim_with(worker)
    before = lease_of(handle.id)
    lock = RowLock(handle.id)  # as the step writer holds it while it records a step
    releaser = threading.Timer(0.3, lock.release)
    releaser.start()
    try:
        renew(worker)
    finally:
        releaser.join(10)
    assert lease_of(handle.id) > before


def test_a_row_another_session_keeps_locked_does_not_hold_back_other_renewals(
    transactional_db, settings
):
    settings.CONDUCTOR_HEARTBEAT_INTERVAL = 0.4  # the locked row is waited for 0.2 s
    stuck, free = invoke("record", "stuck"), invoke("record", "free")
    worker = Worker(install_signal_handlers=False, concurrency=2, worker_id="renewer")
    claim_with(worker)
    before = {h.id: lease_of(h.id) for h in (stuck, free)}
    lock = RowLock(stuck.id, mode="FOR UPDATE")
    try:
        renew(worker)
    finally:
        lock.release()
    assert lease_of(free.id) > before[free.id]
    assert lease_of(stuck.id) == before[stuck.id]


def test_an_expired_lease_is_not_renewed(transactional_db):
    handle = invoke("record", "x")
    worker = Worker(install_signal_handlers=False, concurrency=1, worker_id="late")
    claim_with(worker)
    Execution.objects.filter(pk=handle.id).update(lease_expires_at=Now() - timedelta(seconds=1))
    expired = lease_of(handle.id)
    renew(worker)
    assert lease_of(handle.id) == expired  # another worker may take it over now


def test_a_reclaimed_execution_keeps_its_new_lease_when_the_old_attempt_ends(transactional_db):
    handle = invoke("record", "x")
    worker = Worker(install_signal_handlers=False, concurrency=2, worker_id="again")
    ((_, first_claim),) = claim_with(worker)
    # The lease was lost and the execution re-queued; this same worker claims it again.
    Execution.objects.filter(pk=handle.id).update(status="pending", lease_owner=None)
    worker.claiming.claim()
    assert sorted(worker.holdings.running) == [
        (handle.id, first_claim),
        (handle.id, first_claim + 1),
    ]
    worker.holdings.outcomes.append(Outcome(handle.id, first_claim, "completed", result="1"))
    # The old attempt's outcome: refused by the fence, and forgotten.
    worker.claiming.outcomes.flush()
    assert list(worker.holdings.running) == [(handle.id, first_claim + 1)]
    before = lease_of(handle.id)
    renew(worker)
    assert lease_of(handle.id) > before  # the new claim's lease is still renewed


def test_hand_back_returns_only_this_processs_claims_when_another_shares_its_worker_id(
    transactional_db,
):
    mine, theirs = invoke("record", "mine"), invoke("record", "theirs")
    Execution.objects.filter(pk=theirs.id).update(priority=-1)  # claimed second
    one = Worker(install_signal_handlers=False, concurrency=1, prefetch=0, worker_id="twin")
    two = Worker(install_signal_handlers=False, concurrency=1, prefetch=0, worker_id="twin")
    assert [key[0] for key in claim_with(one)] == [mine.id]
    assert [key[0] for key in claim_with(two)] == [theirs.id]
    one.claiming.outcomes.hand_back()
    assert Execution.objects.get(pk=mine.id).status == "pending"
    assert Execution.objects.get(pk=theirs.id).status == "running"


SLOW_CLAIM = """
CREATE FUNCTION conductor_test_slow_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$;
CREATE TRIGGER conductor_test_slow_claim BEFORE UPDATE ON django_conductor_execution
FOR EACH ROW WHEN (NEW.id = {first} AND NEW.status = 'running')
EXECUTE FUNCTION conductor_test_slow_claim();
"""
FAST_CLAIM = """
DROP TRIGGER IF EXISTS conductor_test_slow_claim ON django_conductor_execution;
DROP FUNCTION IF EXISTS conductor_test_slow_claim();
"""


def test_a_claim_sees_a_child_that_finished_while_the_claim_was_under_way(transactional_db):
    """The claim's statement reads steps from its snapshot; a child finishing after that
    snapshot, but before the claim locks the parent, must still be seen."""
    first = invoke("record", "claimed first", priority=10)
    parent = invoke("record", "waits on a child")
    child = invoke("record", "the child")
    Step.objects.create(execution_id=parent.id, name="child", kind="invoke", child_id=child.id)
    worker = Worker(install_signal_handlers=False, concurrency=2, prefetch=0, worker_id="claimer")
    with connection.cursor() as cursor:
        cursor.execute(SLOW_CLAIM.format(first=first.id))
    try:
        claiming = threading.Thread(target=in_a_thread(worker.claiming.claim))
        claiming.start()
        wait_until(claim_is_sleeping_in_the_trigger)
        # The child finishes: its parent's invoke step is recorded, the parent row touched.
        Step.objects.filter(execution_id=parent.id).update(finished_at=Now(), result=42)
        Execution.objects.filter(pk=parent.id).update(wake_pending=False)
        claiming.join(30)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(FAST_CLAIM)
    (claimed,) = [h.claimed for key, h in worker.holdings.running.items() if key[0] == parent.id]
    step = claimed.steps["child"]
    assert (step.finished, step.result) == (True, 42)


def in_a_thread(work):
    def run():
        try:
            work()
        finally:
            connection.close()  # the thread's own connection

    return run


def claim_is_sleeping_in_the_trigger():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
            "AND datname = current_database()"
        )
        return cursor.fetchone()[0] == 1


def test_a_worker_leaves_executions_of_tasks_it_lacks_for_one_that_has_them(
    run_worker, execution_factory, caplog
):
    elsewhere = execution_factory(task_name="only-in-the-new-release", status="pending")
    here = invoke("record", "known")
    with caplog.at_level("WARNING", logger="django_conductor.worker"):
        run_worker()
    assert Execution.objects.get(pk=here.id).status == "completed"
    elsewhere.refresh_from_db()
    assert (elsewhere.status, elsewhere.attempts, elsewhere.claims) == ("pending", 0, 0)
    assert "only-in-the-new-release (1)" in caplog.text


def test_a_workers_heartbeat_says_which_tasks_it_has(transactional_db):
    worker = Worker(install_signal_handlers=False, worker_id="knows")
    worker.heartbeat.beat()
    tasks = WorkerHeartbeat.objects.get(worker_id="knows").tasks
    assert "record" in tasks and "echo" in tasks


def test_a_ctx_call_on_a_connection_the_server_dropped_is_not_taken_for_a_transaction(
    run_worker,
):
    handle = invoke("step-after-a-dropped-connection", {})
    run_worker(concurrency=1)
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.error) == ("completed", ""), execution.error
    assert execution.result == "recorded"


def test_a_row_another_session_keeps_locked_delays_only_its_own_step_records(transactional_db):
    stuck, free = invoke("record", "stuck"), invoke("record", "free")
    claims = {row[0]: row[7] for row in (claim_as("w"), claim_as("w"))}
    writer = StepWriter()
    lock = RowLock(stuck.id, mode="FOR UPDATE")
    records = {
        handle.id: StepRecord(
            execution_id=handle.id, claims=claims[handle.id], name="s", kind="step", result="1"
        )
        for handle in (stuck, free)
    }
    outcomes = {}

    def record(execution_id):
        outcomes[execution_id] = writer.record(records[execution_id])

    threads = [threading.Thread(target=record, args=(pk,)) for pk in (stuck.id, free.id)]
    try:
        for thread in threads:
            thread.start()
        wait_until(lambda: free.id in outcomes, 10)
        assert stuck.id not in outcomes
        assert not Step.objects.filter(execution_id=stuck.id).exists()
    finally:
        lock.release()
    wait_until(lambda: stuck.id in outcomes, 10)
    for thread in threads:
        thread.join(10)
    writer.close()
    assert outcomes == {stuck.id: True, free.id: True}
    assert Step.objects.filter(name="s").count() == 2
