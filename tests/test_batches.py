"""Batch handlers (``@task(batch=...)``): a batch task's ready executions are claimed
together, up to the batch's size, and its handler gets their events in one call; each
execution keeps its own attempts, result and retry schedule."""

import signal
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models.functions import Now
from django.test import override_settings

from django_conductor import cancel, emit, invoke
from django_conductor.checks import check_tasks
from django_conductor.definition import task
from django_conductor.models import Execution, FailedExecution, Status
from django_conductor.store.limits import Defined, put_limits
from tests.testapp.batch_tasks import (
    batch_async,
    batch_fails,
    batch_hang_first,
    batch_insert,
    batch_slow,
    batch_stalls_first,
    batch_uses_step,
    batch_waits,
    batch_windowed,
    batch_wrong_length,
)
from tests.testapp.models import SideEffect

from .conftest import effects, wait_until
from .test_window_runs import at, zone_where_it_is
from .test_worker_process import SHORT_LEASE


def batches():
    """The batches that ran, each as the list of its execution ids, in the order they ran."""
    return [[int(i) for i in value.split(",")] for value in effects("batch")]


def by_id(handles):
    executions = Execution.objects.in_bulk([handle.id for handle in handles])
    return [executions[handle.id] for handle in handles]


def all_completed(handles):
    return {e.status for e in by_id(handles)} == {Status.COMPLETED}


def test_ready_executions_run_together_up_to_the_batch_size(run_worker):
    handles = batch_insert.invoke_many({"n": n} for n in range(12))
    assert set(Execution.objects.values_list("concurrency_key", flat=True)) == {""}
    run_worker(concurrency=2)

    ran = batches()
    assert sorted(len(batch) for batch in ran) == [2, 5, 5]
    assert sorted(i for batch in ran for i in batch) == [handle.id for handle in handles]
    # Each execution has its own result, the one at its event's place in the list.
    for n, execution in enumerate(by_id(handles)):
        size = next(len(batch) for batch in ran if execution.id in batch)
        assert execution.status == Status.COMPLETED
        assert execution.result == {"n": n, "size": size}
        assert execution.attempts == 1
    assert handles[0].wait(timeout=1) == {"n": 0, "size": 5}


def test_every_creation_path_leads_to_the_batch(run_worker):
    invoked = batch_insert.invoke({"n": 1})
    emitted = emit("batch.seen", {"n": 2})
    by_name = invoke("batch-insert", {"n": 3})
    run_worker()

    assert batches() == [sorted([invoked.id, emitted[0].id, by_name.id])]


def test_a_partial_batch_waits_until_it_fills_or_its_wait_is_over(run_worker):
    first = batch_waits.invoke_many([{}, {}])
    run_worker()  # two of three, and ten minutes to wait: nothing is due
    assert batches() == []
    assert {e.status for e in by_id(first)} == {Status.PENDING}

    third = batch_waits.invoke({})
    run_worker()  # the batch is full
    assert batches() == [[*[h.id for h in first], third.id]]

    late = batch_waits.invoke_many([{}, {}])
    # Their wait is over, as if they had been ready for eleven minutes.
    Execution.objects.filter(pk__in=[h.id for h in late]).update(
        run_at=Now() - timedelta(minutes=11)
    )
    run_worker()
    assert batches()[1:] == [[h.id for h in late]]


def test_full_batches_run_and_the_short_rest_waits(run_worker):
    handles = batch_waits.invoke_many([{}] * 7)
    run_worker(concurrency=4)

    ids = [h.id for h in handles]
    assert sorted(batches()) == [ids[0:3], ids[3:6]]
    assert by_id(handles)[6].status == Status.PENDING


def test_a_failing_batch_fails_the_attempt_of_each_member_on_its_own_schedule(run_worker):
    handles = batch_fails.invoke_many([{}, {}, {}])
    # One of them has already used its first attempt: this is its last.
    Execution.objects.filter(pk=handles[2].id).update(attempts=1)
    run_worker()

    assert batches() == [[h.id for h in handles]]
    fresh, fresh_too, last = by_id(handles)
    for execution in (fresh, fresh_too):
        assert execution.status == Status.PENDING
        assert execution.attempts == 1
        assert "the bulk insert failed" in execution.error
        assert execution.run_at > last.finished_at + timedelta(minutes=59)
    assert last.status == Status.FAILED
    assert last.attempts == 2
    assert list(FailedExecution.objects.values_list("execution_id", flat=True)) == [last.id]


def test_a_result_list_of_the_wrong_length_fails_the_batch_for_good(run_worker):
    handles = batch_wrong_length.invoke_many([{}, {}])
    run_worker()

    assert [e.status for e in by_id(handles)] == [Status.FAILED] * 2
    error = by_id(handles)[0].error
    assert "must return None or a list with one result per event (2 here)" in error
    assert "not a list of 1" in error


def test_a_step_in_a_batch_handler_fails_it_for_good_and_says_why(run_worker):
    handles = batch_uses_step.invoke_many([{}, {}])
    run_worker()

    executions = by_id(handles)
    assert [e.status for e in executions] == [Status.FAILED] * 2
    assert "ctx.step() is not available in a batch handler" in executions[0].error
    assert [e.attempts for e in executions] == [1, 1]  # no retry for a bug in the code
    assert effects("event") == []


def test_an_async_batch_handler(run_worker):
    handles = batch_async.invoke_many([1, 2, 3])
    run_worker()

    assert [e.result for e in by_id(handles)] == [2, 4, 6]


def test_a_member_cancelled_before_its_batch_starts_is_left_out(run_worker):
    kept, dropped = batch_insert.invoke_many([{"n": 1}, {"n": 2}])
    # A cancel that reached the row while it was running elsewhere, then re-queued.
    Execution.objects.filter(pk=dropped.id).update(cancel_requested_at=Now())
    run_worker()

    assert batches() == [[kept.id]]
    assert [e.status for e in by_id([kept, dropped])] == [Status.COMPLETED, Status.CANCELLED]


def test_a_member_cancelled_while_its_batch_runs_ends_cancelled(worker_process):
    handles = batch_slow.invoke_many([{}, {}, {}])
    worker_process("--concurrency", "2")
    wait_until(lambda: batches() != [], timeout=60)
    assert cancel(handles[1].id)
    # The worker's listener hands the cancel to the running batch before it ends.
    wait_until(lambda: by_id(handles)[1].cancel_requested_at is not None)
    SideEffect.objects.create(kind="go")

    finished = (Status.COMPLETED, Status.CANCELLED)
    wait_until(lambda: all(e.status in finished for e in by_id(handles)), timeout=60)
    assert [e.status for e in by_id(handles)] == [
        Status.COMPLETED,
        Status.CANCELLED,
        Status.COMPLETED,
    ]
    assert by_id(handles)[0].result == handles[0].id


def test_a_killed_workers_batch_runs_again_whole_on_another(worker_process):
    handles = batch_hang_first.invoke_many([{}, {}, {}])
    doomed = worker_process("--concurrency", "2", "--worker-id", "doomed", env=SHORT_LEASE)
    wait_until(lambda: batches() != [], timeout=60)
    assert {e.status for e in by_id(handles)} == {Status.RUNNING}
    doomed.signal(signal.SIGKILL)
    doomed.wait(timeout=30)

    worker_process("--concurrency", "2", "--worker-id", "heir", env=SHORT_LEASE)
    wait_until(lambda: all_completed(handles), timeout=90)
    ids = [h.id for h in handles]
    assert batches() == [ids, ids]
    # The killed attempt counts: each member is on its second.
    assert sorted(effects("event")) == sorted(f"{i}:{n}" for i in ids for n in (1, 2))
    assert [e.claims for e in by_id(handles)] == [2, 2, 2]


def test_a_batch_frozen_past_its_lease_cannot_overwrite_the_outcomes_of_its_heir(
    worker_process,
):
    handles = batch_stalls_first.invoke_many([{}, {}, {}])
    frozen = worker_process("--concurrency", "1", "--worker-id", "frozen", env=SHORT_LEASE)
    wait_until(lambda: batches() != [], timeout=60)
    frozen.signal(signal.SIGSTOP)
    try:
        heir = worker_process("--concurrency", "1", "--worker-id", "heir", env=SHORT_LEASE)
        wait_until(lambda: all_completed(handles), timeout=90)
        SideEffect.objects.create(kind="go")
    finally:
        frozen.signal(signal.SIGCONT)
    # Woken, its handler ends and returns; its outcomes are for a claim it lost.
    wait_until(lambda: effects("stalled-ended") == [""], timeout=60)
    frozen.signal(signal.SIGTERM)
    assert frozen.wait(60) == 0, frozen.output
    assert [e.result for e in by_id(handles)] == [heir.process.pid] * 3
    assert [(e.status, e.claims) for e in by_id(handles)] == [(Status.COMPLETED, 2)] * 3
    heir.signal(signal.SIGTERM)
    assert heir.wait(60) == 0, heir.output


def test_outside_its_window_a_batch_waits_for_the_opening_without_an_attempt(run_worker):
    handles = batch_windowed.invoke_many([{}, {}])
    closed_zone, closed_local = zone_where_it_is(10, 16)  # the window is 22:00-06:00
    with override_settings(TIME_ZONE=closed_zone):
        run_worker()
    assert batches() == []
    for execution in by_id(handles):
        assert (execution.status, execution.attempts) == (Status.PENDING, 0)
        assert execution.run_at == at(closed_local, "22:00")

    open_zone, _ = zone_where_it_is(0, 4)
    Execution.objects.update(run_at=Now())
    with override_settings(TIME_ZONE=open_zone):
        run_worker()
    assert batches() == [[h.id for h in handles]]
    assert [e.attempts for e in by_id(handles)] == [1, 1]


def test_executions_made_before_their_task_was_a_batch_task_run_as_batches_of_one(
    run_worker,
):
    handles = batch_insert.invoke_many([{"n": 1}, {"n": 2}])
    with connection.cursor() as cursor:  # the task's path is already stored
        put_limits(cursor, [Defined("batch-insert", None, "")])
    # As old code made them: claimed with the rest.
    Execution.objects.filter(pk__in=[h.id for h in handles]).update(concurrency_key=None)
    run_worker()

    assert sorted(batches()) == [[handles[0].id], [handles[1].id]]
    assert [e.result["size"] for e in by_id(handles)] == [1, 1]


def test_a_task_that_becomes_a_batch_task_has_its_executions_keyed_anew(transactional_db):
    handles = batch_insert.invoke_many([{"n": 1}, {"n": 2}])
    Execution.objects.update(concurrency_key=None)
    with connection.cursor() as cursor:
        assert put_limits(cursor, [Defined("batch-insert", None, "")])
    assert {e.concurrency_key for e in by_id(handles)} == {""}
    with connection.cursor() as cursor:  # and back, when it is no batch task any more
        assert put_limits(cursor, [Defined("batch-insert", None, None)])
    assert {e.concurrency_key for e in by_id(handles)} == {None}


@pytest.mark.parametrize(
    ("batch", "problem"),
    [
        (0, "batch must be None, a size from 1 to 10,000"),
        (10_001, "batch must be None, a size from 1 to 10,000"),
        ((10, -1), "or (size, longest wait)"),
        ((10, float("inf")), "or (size, longest wait)"),
        ("100", "not '100'"),
    ],
)
def test_a_bad_batch_is_reported_at_start_up(clean_registry, batch, problem):
    @task(name="bad-batch", batch=batch)
    def bad(events, ctx):
        pass

    errors = check_tasks()
    assert [e.id for e in errors] == ["django_conductor.E003"]
    assert problem in errors[0].msg


def test_batch_and_concurrency_cannot_be_combined(clean_registry):
    @task(name="both", batch=10, concurrency=2)
    def both(events, ctx):
        pass

    errors = check_tasks()
    assert [e.id for e in errors] == ["django_conductor.E003"]
    assert "batch and concurrency cannot be combined" in errors[0].msg


def test_a_good_batch_raises_no_warning(clean_registry):
    @task(name="fine", batch=(100, timedelta(seconds=1)))
    def fine(events, ctx):
        pass

    assert check_tasks() == []
    assert (fine.batch_size, fine.batch_wait) == (100, 1.0)
