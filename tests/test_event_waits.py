"""ctx.wait_for_event: parked with no worker held until a matching emit, which wakes it in
the emitter's transaction; only events after the wait began count; timeouts are recorded
and replay the same; an event that comes while the handler still runs is not missed; a
worker restart in between loses nothing."""

import signal
from datetime import timedelta

import pytest
from django.db import transaction

from django_conductor import emit, invoke, retry
from django_conductor.models import Execution, FailedExecution, Step
from django_conductor.registry import registry
from django_conductor.store.base import server_cursor
from django_conductor.store.claims import claim
from django_conductor.store.notify import connect_listener
from django_conductor.store.outcomes import finish_attempts
from django_conductor.store.transitions import after_status_changes
from django_conductor.store.waits import start_wait
from django_conductor.testing import advance
from django_conductor.worker.claimed import Outcome
from tests.testapp.models import SideEffect

from .conftest import wait_until


def state(handle):
    execution = Execution.objects.get(pk=handle.id)
    return execution.status, execution.run_at


def test_a_wait_parks_holding_no_worker_until_a_matching_emit(run_worker):
    handle = invoke("awaits-approval", {"order_id": 1})
    run_worker()
    assert state(handle) == ("waiting", None)  # run_at NULL: no timeout, nothing to poll
    (wait,) = Step.objects.filter(execution_id=handle.id)
    assert (wait.kind, wait.awaited_event, wait.event_match) == (
        "event",
        "order.approved",
        {"order_id": 1},
    )
    emit("order.approved", {"order_id": 2, "by": "bob"})  # another order's: not this one
    assert state(handle)[0] == "waiting"
    emit("order.approved", {"order_id": 1, "by": "ann"})
    assert state(handle)[0] == "pending"
    run_worker()
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.result) == ("completed", {"order_id": 1, "by": "ann"})
    assert SideEffect.objects.filter(kind="approved").count() == 1


def test_an_emit_rolled_back_wakes_nobody(run_worker):
    handle = invoke("awaits-approval", {"order_id": 5})
    run_worker()
    with pytest.raises(RuntimeError), transaction.atomic():
        emit("order.approved", {"order_id": 5})
        assert state(handle)[0] == "pending"
        raise RuntimeError
    assert state(handle)[0] == "waiting"
    assert Step.objects.get(execution_id=handle.id).finished_at is None


def test_an_event_emitted_before_the_wait_began_does_not_count(run_worker):
    emit("order.approved", {"order_id": 3})
    handle = invoke("awaits-approval", {"order_id": 3})
    run_worker()
    assert state(handle)[0] == "waiting"


def test_a_timeout_is_recorded_and_fails_the_execution_for_good(run_worker):
    handle = invoke("awaits-approval", {"order_id": 4, "timeout": 3600})
    run_worker()
    (wait,) = Step.objects.filter(execution_id=handle.id)
    length = wait.wake_at - wait.started_at
    assert length.total_seconds() == 3600
    advance(length - timedelta(minutes=1))
    run_worker()
    assert state(handle)[0] == "waiting"  # a minute to go
    advance(timedelta(minutes=1))
    run_worker()
    execution = Execution.objects.get(pk=handle.id)
    assert execution.status == "failed" and execution.attempts == 1
    assert "No event came for wait 'approval'" in execution.error
    wait.refresh_from_db()
    assert wait.error == "Timed out waiting for the event" and wait.finished_at is not None
    emit("order.approved", {"order_id": 4})  # too late: the timeout is the outcome
    assert Execution.objects.get(pk=handle.id).status == "failed"
    # A retry waits for the event anew, for the same length of time.
    assert retry(handle.id)
    wait.refresh_from_db()
    assert wait.finished_at is None and wait.error == ""
    assert wait.wake_at - wait.started_at == length
    run_worker()
    assert state(handle)[0] == "waiting"
    emit("order.approved", {"order_id": 4})
    run_worker()
    assert Execution.objects.get(pk=handle.id).status == "completed"
    assert FailedExecution.objects.get(execution_id=handle.id).retried_at is not None


def test_a_handler_may_catch_the_timeout_and_its_replay_sees_the_same(run_worker):
    handle = invoke("awaits-or-escalates")
    run_worker()
    advance(timedelta(hours=1))
    run_worker()
    execution = Execution.objects.get(pk=handle.id)
    assert execution.status == "completed"
    assert execution.result.startswith("escalated: No event came for wait 'approval'")


def test_an_event_that_comes_while_the_handler_still_runs_is_not_missed(transactional_db):
    """The wait is on record, the attempt has not parked yet: the emit flags the execution,
    and its park turns into a run at once."""
    handle = invoke("awaits-approval", {"order_id": 6})
    with connect_listener() as conn, server_cursor(conn) as cursor:
        (claimed,) = claim(
            cursor,
            places=1,
            idle=1,
            worker="slow-worker",
            lease=600.0,
            queues=[],
            tasks=[task.name for task in registry],
        )
        started = start_wait(
            cursor,
            execution_id=claimed.id,
            claims=claimed.claims,
            step_name="approval",
            event="order.approved",
            match='{"order_id": 6}',
            timeout=None,
        )
        assert started.recorded
        emit("order.approved", {"order_id": 6})
        assert Execution.objects.get(pk=handle.id).wake_pending
        with conn.transaction():
            park = Outcome(claimed.id, claimed.claims, "waiting", refund=1)
            after_status_changes(cursor, finish_attempts(cursor, [park]))
    assert state(handle)[0] == "pending"


@pytest.mark.slow
def test_a_wait_survives_a_worker_restart(worker_process):
    handle = invoke("awaits-approval", {"order_id": 8})
    first = worker_process()
    wait_until(lambda: state(handle)[0] == "waiting", timeout=60)
    first.signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 0
    emit("order.approved", {"order_id": 8, "by": "carol"})
    second = worker_process("--burst")
    assert second.wait(timeout=60) == 0, second.output
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.result) == ("completed", {"order_id": 8, "by": "carol"})


def test_the_admin_draws_a_wait_on_the_timeline(admin_client, run_worker):
    from django.urls import reverse

    handle = invoke("awaits-approval", {"order_id": 10})
    run_worker()
    page = admin_client.get(reverse("admin:django_conductor_execution_change", args=[handle.id]))
    assert "waiting for event &#x27;order.approved&#x27;" in page.content.decode()
    emit("order.approved", {"order_id": 10})
    run_worker()
    page = admin_client.get(reverse("admin:django_conductor_execution_change", args=[handle.id]))
    assert "event &#x27;order.approved&#x27; came after" in page.content.decode()
