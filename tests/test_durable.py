"""Durable steps, sleeps and child executions, end to end with an in-process worker."""

from datetime import timedelta

import pytest
from django.db.models.functions import Now

from django_conductor import ExecutionFailed, invoke
from django_conductor.models import Execution, FailedExecution, Step
from django_conductor.testing import advance
from tests.conftest import database_now, effects
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db(transaction=True)


def test_retry_of_an_order_does_not_charge_or_email_again(run_worker):
    handle = invoke("order", {})
    run_worker()
    assert handle.wait(1) == {"charge": "ch_1"}
    assert len(effects("charge")) == 1
    assert len(effects("email")) == 1
    assert effects("save-try") == ["1", "2"]
    assert len(effects("save")) == 1
    assert Execution.objects.get(pk=handle.id).attempts == 2


def test_first_run_and_replay_return_the_same_json_value(run_worker):
    handle = invoke("order", {})
    run_worker()
    charge = Step.objects.get(execution_id=handle.id, name="charge")
    assert charge.result == {"id": "ch_1", "effect": "charge"}
    assert charge.attempt == 1
    assert Step.objects.get(execution_id=handle.id, name="save").attempt == 2


def test_retry_of_a_hundred_item_loop_skips_the_items_already_done(run_worker):
    handle = invoke("hundred-items", {})
    run_worker()
    assert handle.wait(1) == sum(2 * i for i in range(1, 101))
    items = [int(v) for v in effects("item")]
    assert sorted(items) == list(range(1, 101))  # every item ran exactly once
    assert items[:49] == list(range(1, 50))  # 1-49 in the first attempt, not again
    assert Step.objects.filter(execution_id=handle.id).count() == 100


def test_sleep_frees_the_slot_and_the_reminder_goes_out_after_the_wake_time(run_worker):
    handle = invoke("reminder", {})
    other = invoke("record", "meanwhile")
    run_worker(concurrency=1)

    sleeping = Execution.objects.get(pk=handle.id)
    assert sleeping.status == "sleeping"
    sleep = Step.objects.get(execution=sleeping, kind="sleep")
    assert sleep.wake_at - sleep.started_at == timedelta(days=1)  # one clock: the database's
    assert sleeping.run_at == sleep.wake_at
    assert sleeping.attempts == 0  # sleeping uses up no attempt
    assert Execution.objects.get(pk=other.id).status == "completed"  # ran in the freed slot
    assert effects("welcome") == [""]
    assert effects("reminder") == []

    run_worker(concurrency=1)  # nothing is due: the sleep holds
    assert Execution.objects.get(pk=handle.id).status == "sleeping"

    advance(timedelta(days=1) - timedelta(minutes=1))
    run_worker(concurrency=1)  # a minute to go
    assert Execution.objects.get(pk=handle.id).status == "sleeping"
    advance(timedelta(minutes=1))
    run_worker(concurrency=1)
    assert handle.wait(1) == "reminded"
    assert effects("welcome") == [""]
    assert effects("reminder") == [""]
    assert Execution.objects.get(pk=handle.id).attempts == 1


def test_sleep_wake_time_is_fixed_at_the_first_call(run_worker):
    handle = invoke("reminder", {})
    run_worker()
    wake_at = Step.objects.get(execution_id=handle.id, name="wait-a-day").wake_at
    Execution.objects.filter(pk=handle.id).update(run_at=Now())  # an early wake-up
    run_worker()
    execution = Execution.objects.get(pk=handle.id)
    assert execution.status == "sleeping"
    assert execution.run_at == wake_at
    assert effects("reminder") == []


def test_parent_gets_its_childs_result(run_worker):
    handle = invoke("parent", 21)
    run_worker()
    assert handle.wait(1) == {"before": "before", "child": 42}
    parent = Execution.objects.get(pk=handle.id)
    child = Execution.objects.get(parent=parent)
    assert (child.task_name, child.queue, child.parent_step) == ("double", "other", "double-it")
    step = Step.objects.get(execution=parent, name="double-it")
    assert (step.kind, step.result, step.child_id) == ("invoke", 42, child.id)
    assert parent.attempts == 1  # waiting for the child used up no attempt


def test_parent_waits_as_waiting_while_its_child_is_not_done(run_worker):
    handle = invoke("parent", 1)
    run_worker(queues=["default"])  # the child's queue is not served
    parent = Execution.objects.get(pk=handle.id)
    assert parent.status == "waiting"
    assert parent.run_at is None  # no timeout: only the child wakes it
    run_worker()
    assert handle.wait(1) == {"before": "before", "child": 2}


def test_nesting_three_levels_deep(run_worker):
    handle = invoke("grandparent", 5)
    run_worker()
    assert handle.wait(1) == {"before": "before", "child": 10}
    assert Execution.objects.filter(status="completed").count() == 3


def test_a_replayed_parent_creates_no_second_child(run_worker):
    handle = invoke("parent", 3)
    run_worker()
    Execution.objects.filter(pk=handle.id).update(status="pending", result=None)
    run_worker()
    assert handle.wait(1) == {"before": "before", "child": 6}
    assert Execution.objects.filter(parent_id=handle.id).count() == 1
    assert effects("double") == ["3"]
    assert effects("before") == [""]


def test_a_child_that_exhausts_its_retries_fails_the_parent_for_good(run_worker):
    handle = invoke("parent-of-failing-child", {})
    run_worker()
    assert effects("child-attempt") == ["1", "2"]
    parent = Execution.objects.get(pk=handle.id)
    assert parent.status == "failed"
    assert parent.error == "Child execution failed: ValueError: card declined"
    assert parent.attempts == 1  # failed for good, no retries
    with pytest.raises(ExecutionFailed, match="Child execution failed: ValueError: card declined"):
        handle.wait(1)
    assert FailedExecution.objects.filter(execution=parent).exists()


def test_retrying_a_parent_retries_its_failed_child(run_worker):
    handle = invoke("parent-of-failing-child", {})
    run_worker()
    child = Execution.objects.get(parent_id=handle.id)
    assert FailedExecution.objects.get(execution_id=handle.id).retry()
    assert Execution.objects.get(pk=child.id).status == "pending"
    assert Step.objects.get(execution_id=handle.id, name="pay").finished_at is None
    run_worker()
    assert effects("child-attempt") == ["1", "2", "1", "2"]
    assert Execution.objects.filter(parent_id=handle.id).count() == 1


def test_a_parent_can_catch_a_child_failure_and_compensate(run_worker):
    handle = invoke("parent-compensates", {})
    run_worker()
    assert handle.wait(1) == {"compensated": "Child execution failed: ValueError: card declined"}
    assert effects("refund") == [""]


def test_a_child_timeout_cancels_the_child_and_fails_the_parent(run_worker):
    handle = invoke("parent-with-timeout", {})
    run_worker(queues=["default"])
    parent = Execution.objects.get(pk=handle.id)
    assert parent.status == "waiting"
    wait = Step.objects.get(execution=parent, kind="invoke")
    assert wait.wake_at - wait.started_at == timedelta(minutes=5)
    assert parent.run_at == wait.wake_at

    advance(timedelta(minutes=5))
    run_worker(queues=["default"])
    parent = Execution.objects.get(pk=handle.id)
    child = Execution.objects.get(parent=parent)
    assert child.status == "cancelled"
    assert parent.status == "failed"
    assert "did not finish" in parent.error and "slow-child" in parent.error
    assert effects("double") == []


def test_a_step_name_used_twice_raises_duplicate_step_name(run_worker):
    handle = invoke("duplicate-steps", {})
    run_worker()
    execution = Execution.objects.get(pk=handle.id)
    assert execution.status == "failed"  # a bug in the handler: retrying cannot help
    assert execution.attempts == 1
    assert "'same' is used twice" in execution.error
    assert effects("first") == [""]
    assert effects("second") == []


def test_a_step_result_that_is_not_json_fails_the_attempt_naming_the_step(run_worker):
    handle = invoke("non-json-step", {})
    run_worker()
    execution = Execution.objects.get(pk=handle.id)
    assert execution.status == "pending"
    assert "Step 'makes-a-set' returned a value that is not JSON" in execution.error
    assert "the result is of type set" in execution.error  # what is wrong, and the remedy:
    assert "pass a list, e.g. sorted(value)" in execution.error
    step = Step.objects.get(execution=execution)  # on record to be seen, with no result
    assert (step.result, step.error) == (None, execution.error)
    assert step.finished_at is not None


def test_a_step_that_raised_is_on_record_with_its_error_and_runs_again_on_retry(run_worker):
    from django_conductor import retry

    handle = invoke("raising-step", {})
    run_worker()
    step = Step.objects.get(execution_id=handle.id, name="charge")
    assert Execution.objects.get(pk=handle.id).status == "failed"
    assert (step.kind, step.error, step.result) == ("step", "RuntimeError: card declined", None)
    assert step.started_at <= step.finished_at

    SideEffect.objects.create(kind="flag", value="card-fixed")
    assert retry(handle.id)
    run_worker()
    assert handle.wait(1) == "charged"
    step = Step.objects.get(execution_id=handle.id, name="charge")
    assert (step.error, step.result) == ("", "charged")
    assert len(effects("charge-try")) == 2


def test_an_async_handler_uses_steps_sleep_and_invoke(run_worker):
    handle = invoke("async-everything", {})
    run_worker()
    assert handle.wait(1) == {
        "got": {"fetched": True},
        "plain": 42,
        "child": 42,
        "attempt": 1,
    }
    names = list(Step.objects.filter(execution_id=handle.id).values_list("name", flat=True))
    assert names == ["fetch", "plain", "nap", "child"]


def test_sync_and_async_tasks_mix_in_one_worker(run_worker):
    handles = [invoke("async-everything", {}), invoke("order", {}), invoke("echo", 1)]
    run_worker(concurrency=3)
    assert [Execution.objects.get(pk=h.id).status for h in handles] == ["completed"] * 3


def test_a_cancelled_running_execution_stops_at_its_next_step(run_worker):
    from django_conductor import ExecutionCancelled
    from django_conductor.context import Context

    handle = invoke("steps-then-checkpoint", {})
    original = Context.checkpoint

    def cancel_then_checkpoint(ctx):
        if effects("one"):
            from django_conductor import cancel

            cancel(ctx.execution_id, reason="stop now")
            ctx.request_cancel()  # what the worker's heartbeat does on seeing the request
        return original(ctx)

    Context.checkpoint = cancel_then_checkpoint
    try:
        run_worker()
    finally:
        Context.checkpoint = original
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.error) == ("cancelled", "stop now")
    assert effects("two") == []
    with pytest.raises(ExecutionCancelled):
        handle.wait(1)


def test_retrying_a_parent_whose_child_timed_out_gives_the_child_a_fresh_deadline(run_worker):
    handle = invoke("parent-with-timeout", {})
    run_worker(queues=["default"])
    advance(timedelta(minutes=6))
    run_worker(queues=["default"])
    assert Execution.objects.get(pk=handle.id).status == "failed"

    retried_at = database_now()
    assert FailedExecution.objects.get(execution_id=handle.id).retry()
    step = Step.objects.get(execution_id=handle.id, name="slow-child")
    assert step.wake_at - step.started_at == timedelta(minutes=5)  # exactly: one clock
    assert step.started_at >= retried_at  # restarted now
    run_worker()  # serves the child's queue this time
    assert handle.wait(1) == 2


@pytest.mark.parametrize("query_first", [False, True])
@pytest.mark.parametrize("call", ["step", "sleep", "sleep_until", "invoke", "checkpoint"])
def test_a_ctx_call_inside_atomic_is_refused_before_anything_runs(run_worker, call, query_first):
    handle = invoke("ctx-in-atomic", {"call": call, "query_first": query_first})
    run_worker()
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.attempts) == ("failed", 1)  # a retry cannot fix it
    assert f"ctx.{call}(" in execution.error
    assert "inside a transaction (transaction.atomic()), and nothing was run" in execution.error
    assert effects("inside") == []
    assert effects("after-atomic") == []
    assert not Step.objects.filter(execution=execution).exists()
    assert Execution.objects.count() == 1  # no child was created


def test_an_atomic_block_inside_a_steps_function_is_the_way_to_use_one(run_worker):
    handle = invoke("atomic-inside-step", {})
    run_worker()
    assert handle.wait(1) == "saved"
    assert effects("saved") == [""]


def test_graceful_shutdown_hands_a_long_handler_back_at_its_next_step(transactional_db):
    import threading
    import time

    from django_conductor.worker import Worker
    from tests.conftest import wait_until

    handle = invoke("slow-steps", {})
    worker = Worker(install_signal_handlers=False, concurrency=1)
    thread = threading.Thread(target=worker.run)
    thread.start()
    wait_until(lambda: len(effects("slow-step")) >= 3)
    asked = time.monotonic()
    worker.stop()  # the grace period is 30 s; the next step is a release point
    thread.join(30)
    assert time.monotonic() - asked < 15  # far below the grace: it parked at its next step
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.attempts, execution.lease_owner) == ("pending", 0, None)
    done_before = Step.objects.filter(execution=execution).count()
    assert 3 <= done_before < 30

    Worker(install_signal_handlers=False, burst=True, concurrency=1).run()
    assert handle.wait(1) == sum(range(1, 31))
    assert sorted(int(v) for v in effects("slow-step")) == list(range(1, 31))


def test_cancelling_a_running_execution_reaches_its_worker_without_waiting_for_a_heartbeat(
    transactional_db, settings
):
    import threading

    from django_conductor import cancel
    from django_conductor.worker import Worker
    from tests.conftest import wait_until

    # No heartbeat renews or polls during the test: only the notification can tell the worker.
    settings.CONDUCTOR_HEARTBEAT_INTERVAL = 120
    settings.CONDUCTOR_LEASE = 600
    handle = invoke("slow-steps", {})
    worker = Worker(install_signal_handlers=False, concurrency=1)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_until(lambda: len(effects("slow-step")) >= 2)
        assert cancel(handle.id, reason="customer left")
        wait_until(lambda: Execution.objects.get(pk=handle.id).status == "cancelled", timeout=60)
    finally:
        worker.stop()
        thread.join(30)
    execution = Execution.objects.get(pk=handle.id)
    assert execution.error == "customer left"
    assert len(effects("slow-step")) < 30
