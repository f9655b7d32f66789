"""Waiting on children, cancelling and retrying: outcomes are recorded once, cancels reach
every execution of a tree, and locks are taken in one order. Races are run step by step
from two connections, each step waiting for the other to block, never for a clock."""

import threading
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.db.models.functions import Now

from django_conductor import cancel, invoke, retry
from django_conductor.models import Execution, FailedExecution, Step
from django_conductor.registry import registry
from django_conductor.store import base
from django_conductor.store.children import START_CHILD
from django_conductor.store.claims import claim
from django_conductor.store.notify import connect_listener
from django_conductor.store.outcomes import finish_attempts, reap_expired
from django_conductor.store.transitions import after_status_changes
from django_conductor.testing import advance
from django_conductor.worker.claimed import Outcome
from django_conductor.worker.holdings import Holdings
from tests.conftest import effects, wait_until
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db(transaction=True)


def claim_as(worker_id, queue):
    """Claim the next ready execution of ``queue`` as a worker would, on a connection of
    its own; returns (id, claims). Nothing runs it: the test decides how it ends."""
    with connect_listener() as conn, conn.cursor() as cursor:
        rows = claim(
            cursor,
            places=1,
            idle=1,
            worker=worker_id,
            lease=600.0,
            queues=[queue],
            tasks=[task.name for task in registry],
        )
    assert rows, f"nothing to claim on {queue!r}"
    return rows[0].id, rows[0].claims


def outcome(execution_id, claims, status, result=None):
    error = None if status == "completed" else f"{status} here"
    return Outcome(execution_id, claims, status, result=result, error=error, traceback="")


def finish_as(execution_id, claims, status, result=None):
    """Write one attempt's outcome as the worker's flush does, in one transaction."""
    with connect_listener() as conn, conn.transaction(), conn.cursor() as cursor:
        changes = finish_attempts(cursor, [outcome(execution_id, claims, status, result)])
        after_status_changes(cursor, changes)


def backend_pid(conn=None):
    if conn is not None:
        return conn.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def blocked(pid):
    """Whether the session ``pid`` is waiting for a lock that another session holds."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT cardinality(pg_blocking_pids(%s)) > 0", [pid])
        return cursor.fetchone()[0]


class InThread:
    """Run ``fn`` on a thread with its own Django connection; keeps its pid, result and
    error for the test to wait on and inspect."""

    def __init__(self, fn):
        self.fn = fn
        self.pid = None
        self.result = None
        self.error = None
        self.has_pid = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        assert self.has_pid.wait(10)

    def _run(self):
        try:
            self.pid = backend_pid()
            self.has_pid.set()
            self.result = self.fn()
        except BaseException as exc:
            self.error = exc
        finally:
            self.has_pid.set()
            connection.close()

    def join(self):
        self.thread.join(30)
        assert not self.thread.is_alive()
        return self


@pytest.fixture
def unheard_cancels(monkeypatch):
    """The worker never hears of a cancel while an attempt runs (neither by notification nor
    by heartbeat), so a test controls exactly when a cancel has committed."""
    monkeypatch.setattr(Holdings, "request_cancel", lambda self, ids: None)


# -- 10: a child timeout is a recorded outcome ---------------------------------------------


def test_a_child_timeout_is_recorded_so_a_late_child_result_never_reaches_the_parent(
    run_worker,
):
    handle = invoke("timeout-then-fallback", {})
    run_worker(queues=["default"])
    assert Execution.objects.get(pk=handle.id).status == "waiting"
    child_id, child_claims = claim_as("child-worker", "children")  # the child is running

    advance(timedelta(minutes=5))
    run_worker(queues=["default"])  # the deadline passed: the parent takes the fallback
    parent = Execution.objects.get(pk=handle.id)
    assert parent.status == "sleeping"
    assert effects("fallback") == [""]
    step = Step.objects.get(execution=parent, name="slow-child")
    assert step.finished_at is not None
    assert step.error.startswith("Timed out: the parent stopped waiting")
    assert Execution.objects.get(pk=child_id).cancel_requested_at is not None

    finish_as(child_id, child_claims, "completed", '"late result"')  # returned before a step
    assert Execution.objects.get(pk=child_id).status == "completed"
    step.refresh_from_db()
    assert (step.result, step.error.startswith("Timed out")) == (None, True)  # not overwritten

    advance(timedelta(hours=1))
    run_worker(queues=["default"])  # the replay after the sleep takes the same branch
    assert handle.wait(1) == "fallback"
    assert effects("fallback") == [""]
    assert effects("use-child") == []


# -- 11: a cancel that commits while an attempt runs ---------------------------------------


def test_a_cancel_committed_before_a_sleep_parks_ends_the_execution_cancelled(
    run_worker, unheard_cancels
):
    handle = invoke("cancels-itself-then-sleeps", {})
    run_worker()
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.error) == ("cancelled", "stop before the sleep")
    assert execution.finished_at is not None
    assert effects("after-sleep") == []


def test_no_child_is_started_for_a_parent_whose_cancel_has_committed(run_worker, unheard_cancels):
    handle = invoke("cancels-itself-then-invokes", {})
    run_worker()
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.error) == ("cancelled", "stop before the child")
    assert not Execution.objects.filter(parent_id=handle.id).exists()
    assert not Step.objects.filter(execution=execution, kind="invoke").exists()
    assert effects("ran") == []


def test_a_child_started_while_its_parents_cancel_waits_is_cancelled_with_it(transactional_db):
    handle = invoke("record", "parent")
    parent_id, claims = claim_as("parent-worker", "default")
    with connect_listener() as starter, starter.transaction():  # held until it commits
        starter.execute(
            START_CHILD,
            {
                "id": parent_id,
                "claims": claims,
                "name": "late",
                "task_name": "record",
                "queue": "children",
                "payload": '"late"',
                "priority": 0,
                "max_attempts": 3,
                "limit_key": None,
                "channel": base.PLAIN_READY_CHANNEL,
                "timeout": None,
                "trace_context": None,
            },
        )
        canceller = InThread(lambda: cancel(handle.id, reason="stop the tree"))
        wait_until(lambda: blocked(canceller.pid))  # its snapshot predates the child
    canceller.join()
    assert canceller.error is None
    child = Execution.objects.get(parent_id=parent_id)
    assert (child.status, child.error) == ("cancelled", "stop the tree")
    assert Execution.objects.get(pk=parent_id).cancel_requested_at is not None


# -- 12: losing the worker of a cancelled execution ----------------------------------------


def test_a_cancelled_execution_whose_worker_died_ends_cancelled_with_its_reason(run_worker):
    handle = invoke("record", "x")
    claim_as("dead-worker", "default")
    assert cancel(handle.id, reason="customer left")
    Execution.objects.filter(pk=handle.id).update(lease_expires_at=Now() - timedelta(seconds=1))
    run_worker()  # its heartbeat reaps the expired lease
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.error) == ("cancelled", "customer left")
    assert execution.finished_at is not None
    assert not FailedExecution.objects.filter(execution=execution).exists()
    assert effects("ran") == []


# -- 13: retrying a parent -----------------------------------------------------------------


def test_retrying_a_parent_keeps_a_child_failure_it_caught_and_compensated(run_worker):
    handle = invoke("compensates-then-fails", {})
    run_worker()
    parent = Execution.objects.get(pk=handle.id)
    assert (parent.status, parent.error) == ("failed", "RuntimeError: carrier down")
    assert effects("child-attempt") == ["1", "2"]
    assert effects("refund") == [""]

    SideEffect.objects.create(kind="flag", value="ship-fixed")
    assert retry(handle.id)
    pay = Step.objects.get(execution=parent, name="pay")
    assert pay.finished_at is not None and pay.error  # a caught failure is a kept outcome
    assert Execution.objects.get(parent=parent).status == "failed"  # the child is not retried
    run_worker()
    assert handle.wait(1) == "shipped"
    assert effects("child-attempt") == ["1", "2"]
    assert effects("refund") == [""]
    assert effects("ship-try") == ["", ""]


def test_retrying_a_cancelled_parent_restarts_the_child_it_was_waiting_on(run_worker):
    handle = invoke("parent", 4)
    run_worker(queues=["default"])  # the child's queue is not served: the parent waits
    child = Execution.objects.get(parent_id=handle.id)
    assert cancel(handle.id, reason="not now")
    assert Execution.objects.get(pk=child.id).status == "cancelled"

    assert retry(handle.id)
    assert Execution.objects.get(pk=child.id).status == "pending"
    run_worker()
    assert handle.wait(1) == {"before": "before", "child": 8}
    assert effects("double") == ["4"]
    assert effects("before") == [""]


# -- 14: one lock order --------------------------------------------------------------------


def test_a_childs_outcome_write_and_cancelling_its_parent_do_not_deadlock(run_worker):
    handle = invoke("parent", 5)
    run_worker(queues=["default"])
    child_id, child_claims = claim_as("child-worker", "other")
    failure = None
    with connect_listener() as writer:
        try:
            with writer.transaction(), writer.cursor() as cursor:
                # The child's outcome is written; its parent is woken by the next statement.
                rows = finish_attempts(cursor, [outcome(child_id, child_claims, "completed", "10")])
                canceller = InThread(lambda: cancel(handle.id, reason="too late"))
                wait_until(lambda: blocked(canceller.pid))
                after_status_changes(cursor, rows)
        except psycopg.errors.DeadlockDetected as exc:
            failure = exc
    canceller.join()
    assert (failure, canceller.error) == (None, None)
    assert canceller.result is True
    parent = Execution.objects.get(pk=handle.id)
    assert (parent.status, parent.error) == ("cancelled", "too late")
    assert Execution.objects.get(pk=child_id).status == "completed"
    assert Step.objects.get(execution=parent, name="double-it").result == 10


def reap(conn):
    """One reaper pass as a worker's heartbeat runs it; returns the rows it changed."""
    with conn.transaction(), conn.cursor() as cursor:
        rows = reap_expired(cursor)
        after_status_changes(cursor, rows)
    return rows


def test_the_reaper_waits_for_no_row_lock_and_reaps_a_child_once_its_parent_is_free(run_worker):
    handle = invoke("parent", 6)
    run_worker(queues=["default"])
    Execution.objects.filter(parent_id=handle.id).update(max_attempts=1)
    child_id, _claims = claim_as("dead-worker", "other")  # its last attempt: reaping fails it
    Execution.objects.filter(pk=child_id).update(lease_expires_at=Now() - timedelta(seconds=1))
    with connect_listener() as holder, connect_listener() as reaper:
        reaper.execute("SET lock_timeout = '5s'")  # bounds a wait that must not happen
        with holder.transaction():
            holder.execute(f"SELECT id FROM {base.EXECUTION} WHERE id = %s FOR UPDATE", [handle.id])
            assert reap(reaper) == []  # the parent is busy: the child waits for a later pass
        assert [row[:2] for row in reap(reaper)] == [(child_id, "failed")]
    assert Execution.objects.get(pk=handle.id).status == "pending"  # woken by the failure
    assert Step.objects.get(execution_id=handle.id, name="double-it").error
