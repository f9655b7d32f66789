from datetime import timedelta

import pytest

from django_conductor import invoke, retry
from django_conductor.definition import retry_delay
from django_conductor.models import Execution, FailedExecution, Step
from django_conductor.testing import advance, drain
from tests.conftest import database_now
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db(transaction=True)


def test_failed_attempts_are_retried_after_15_then_30_seconds(run_worker):
    handle = invoke("always-fails", {})
    for delay in (15, 30):
        before = database_now()
        run_worker()
        execution = Execution.objects.get(pk=handle.id)
        assert execution.status == "pending"
        assert execution.error == "ValueError: boom"
        waited = execution.run_at - before
        assert timedelta(seconds=delay) <= waited <= timedelta(seconds=delay + 5)
        advance(delay)
    run_worker()
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.attempts) == ("failed", 3)
    assert SideEffect.objects.filter(kind="attempt").count() == 3


def test_default_delays_are_15_30_60_60_seconds():
    assert [retry_delay(None, attempt) for attempt in (2, 3, 4, 5, 9)] == [15, 30, 60, 60, 60]


def test_retry_delays_take_a_sequence_or_a_callable():
    assert [retry_delay([1, timedelta(seconds=2)], a) for a in (2, 3, 4)] == [1, 2, 2]
    assert retry_delay(lambda attempt: attempt * 10, 3) == 30


def test_exhausted_attempts_fail_with_a_failure_record():
    handle = invoke("always-fails", {})
    drain()
    advance(15)
    drain()
    advance(30)
    assert drain().attempts == 1
    execution = Execution.objects.get(pk=handle.id)
    assert execution.status == "failed"
    assert execution.finished_at is not None
    failure = FailedExecution.objects.get(execution=execution)
    assert failure.error == "ValueError: boom"
    assert "Traceback" in failure.traceback and "raise ValueError" in failure.traceback
    assert failure.attempts == 3
    assert failure.retried_at is None


def test_non_retryable_error_fails_at_once(run_worker):
    handle = invoke("non-retryable", {})
    run_worker()
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.attempts, execution.max_attempts) == ("failed", 1, 5)
    assert FailedExecution.objects.get().error == "no point retrying"


def test_a_retry_that_succeeds_completes(run_worker):
    handle = invoke("fails-once", {})
    run_worker()  # retry_delays=[0]: the second attempt is ready at once
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.attempts, execution.result) == ("completed", 2, "ok")


def test_retry_brings_a_failed_execution_back_and_it_then_succeeds(run_worker):
    handle = invoke("flaky-until-flag", {})
    run_worker()
    failure = FailedExecution.objects.get()
    assert Execution.objects.get(pk=handle.id).status == "failed"

    SideEffect.objects.create(kind="flag")
    assert failure.retry() is True
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.attempts, execution.error) == ("pending", 0, "")
    failure.refresh_from_db()
    assert failure.retried_at is not None

    run_worker()
    assert handle.wait(1) == "done"
    assert FailedExecution.objects.count() == 1  # the record is kept


def test_retry_keeps_completed_steps(run_worker, step_factory):
    handle = invoke("flaky-until-flag", {})
    run_worker()
    step_factory(execution_id=handle.id, name="charge", result={"id": "ch_1"})
    assert retry(handle.id)
    assert list(Step.objects.filter(execution_id=handle.id).values_list("name", flat=True)) == [
        "charge"
    ]


def test_retry_of_an_execution_that_is_not_failed_does_nothing():
    handle = invoke("echo", {})
    assert retry(handle.id) is False
    assert Execution.objects.get(pk=handle.id).status == "pending"


def test_retry_when_a_newer_execution_holds_the_dedupe_key_supersedes_the_old_one(run_worker):
    old = invoke("non-retryable", {}, dedupe_key="order-1")
    run_worker()
    newer = invoke("non-retryable", {}, dedupe_key="order-1")
    assert newer.id != old.id
    assert retry(old.id)
    execution = Execution.objects.get(pk=old.id)
    assert (execution.status, execution.superseded) == ("pending", True)
    assert not Execution.objects.get(pk=newer.id).superseded
