"""``ConductorBackend`` against the framework's own expectations of a backend: enqueue and
its result, get_result and refresh, validation, transactions, priority and run_after, queues,
context, failures, signals, checks; the tasks run by real workers, in process and as
processes, including one SIGKILLed mid-task (DESIGN.md: crash safety)."""

import asyncio
import re
import signal
from datetime import timedelta
from functools import partial

import pytest
from asgiref.sync import sync_to_async
from django.core import checks
from django.db import connection, connections, transaction
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from django_conductor import PayloadError, cancel, invoke, retry, run_now
from django_conductor.backends import ConductorBackend
from django_conductor.backends.framework import (
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task,
    task_backends,
    task_enqueued,
    task_finished,
    task_started,
)
from django_conductor.backends.results import raised_class
from django_conductor.backends.running import TaskExited
from django_conductor.exceptions import ExecutionCancelled, NonRetryableError
from django_conductor.models import Execution, FailedExecution
from tests.testapp import framework_tasks as tasks
from tests.testapp.models import SideEffect

from .conftest import effects, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

BACKEND = "django_conductor.backends.ConductorBackend"
#: One attempt only, so that a failing task fails for good in one worker run.
ONE_ATTEMPT = {"default": {"BACKEND": BACKEND, "OPTIONS": {"max_attempts": 1}}}
#: A lease short enough to wait out in a test; the heartbeat stays at most half of it.
SHORT_LEASE = {"CONDUCTOR_TEST_LEASE": "2", "CONDUCTOR_TEST_HEARTBEAT_INTERVAL": "0.5"}


def name_of(django_task):
    return django_task.module_path


def count_seen_by_another_connection():
    """What other connections (a worker's) see."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM django_conductor_execution")
            return cursor.fetchone()[0]
    finally:
        other.close()


def run_async(coroutine):
    """Run async code as an async view would, then close the connection its ORM calls
    opened in asgiref's thread, which nothing else closes."""

    async def run_then_close():
        try:
            return await coroutine
        finally:
            await sync_to_async(connections.close_all)()

    return asyncio.run(run_then_close())


@pytest.fixture
def received():
    """The framework's signals as the backend sends them: (signal name, sender, result)."""
    got = []

    def receiver(name):
        def receive(sender, task_result, **kwargs):
            got.append((name, sender, task_result))

        return receive

    receivers = {
        task_enqueued: receiver("enqueued"),
        task_started: receiver("started"),
        task_finished: receiver("finished"),
    }
    for sig, fn in receivers.items():
        sig.connect(fn, weak=False)
    yield got
    for sig, fn in receivers.items():
        sig.disconnect(fn)


# The backend and its flags


def test_the_configured_backend_is_ours_with_every_capability():
    backend = task_backends["default"]
    assert isinstance(backend, ConductorBackend)
    assert backend.alias == "default"
    assert backend.options == {}
    assert backend.supports_defer
    assert backend.supports_async_task
    assert backend.supports_get_result
    assert backend.supports_priority


def test_every_django_task_is_registered_under_its_module_path():
    from django_conductor.registry import registry

    assert name_of(tasks.add) == "tests.testapp.framework_tasks.add"
    assert name_of(tasks.add) in registry
    assert name_of(tasks.noop_async) in registry


# Enqueue and the result it returns


@pytest.mark.parametrize("django_task", [tasks.noop, tasks.noop_bare, tasks.noop_async])
def test_enqueue_stores_one_ready_execution_and_returns_its_result(django_task, received):
    result = django_task.enqueue(1, two=3)

    assert result.id.isdigit()
    assert result.status == TaskResultStatus.READY
    assert not result.is_finished
    assert result.started_at is None
    assert result.last_attempted_at is None
    assert result.finished_at is None
    assert result.enqueued_at is not None
    with pytest.raises(ValueError, match="Task has not finished yet"):
        result.return_value  # noqa: B018
    assert result.task == django_task
    assert result.args == [1]
    assert result.kwargs == {"two": 3}
    assert result.attempts == 0
    assert result.errors == []
    assert result.backend == "default"
    assert received == [("enqueued", ConductorBackend, result)]

    execution = Execution.objects.get()
    assert str(execution.pk) == result.id
    assert execution.task_name == name_of(django_task)
    assert execution.status == "pending"
    assert execution.queue == "default"
    assert execution.priority == 0
    assert execution.max_attempts == 3
    assert execution.payload == {"args": [1], "kwargs": {"two": 3}, "backend": "default"}


def test_aenqueue_and_aget_result_work_from_async_code():
    async def enqueue_and_read():
        result = await tasks.add.aenqueue(2, b=3)
        return result, await tasks.add.aget_result(result.id)

    result, again = run_async(enqueue_and_read())

    assert result.status == TaskResultStatus.READY
    assert (result.args, result.kwargs) == ([2], {"b": 3})
    assert again == result
    assert Execution.objects.get().task_name == name_of(tasks.add)


def test_arguments_are_normalised_as_the_framework_does():
    result = tasks.noop.enqueue((1, 2), b"text", key=("a",))

    assert result.args == [[1, 2], "text"]
    assert result.kwargs == {"key": ["a"]}
    assert Execution.objects.get().payload["args"] == [[1, 2], "text"]


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        ((object(),), {}, "of type object"),
        ((), {"when": timezone.now()}, "of type datetime"),
        ((float("nan"),), {}, "nan"),
    ],
)
def test_arguments_json_cannot_hold_are_refused_and_nothing_is_stored(args, kwargs, named):
    with pytest.raises(PayloadError, match=re.escape(name_of(tasks.noop))) as refused:
        tasks.noop.enqueue(*args, **kwargs)

    assert isinstance(refused.value, TypeError)
    assert named in str(refused.value)
    assert not Execution.objects.exists()


# get_result and refresh


def test_get_result_reads_back_what_enqueue_returned():
    result = tasks.noop.enqueue()

    assert task_backends["default"].get_result(result.id) == result
    assert tasks.noop.get_result(result.id) == result


@pytest.mark.parametrize("result_id", ["999999", "123abc", "-1", "", "٣", str(2**63)])
def test_get_result_of_no_execution_raises_does_not_exist(result_id):
    tasks.noop.enqueue()

    with pytest.raises(TaskResultDoesNotExist):
        task_backends["default"].get_result(result_id)
    with pytest.raises(TaskResultDoesNotExist):
        run_async(task_backends["default"].aget_result(result_id))


def test_get_result_of_a_conductor_task_raises_does_not_exist():
    handle = invoke("noop")

    with pytest.raises(TaskResultDoesNotExist, match="not one of a Django task"):
        task_backends["default"].get_result(str(handle.id))


def test_get_result_through_another_task_is_a_mismatch():
    result = tasks.noop.enqueue()

    with pytest.raises(Exception, match="Task does not match") as mismatch:
        tasks.add.get_result(result.id)
    assert type(mismatch.value).__name__ == "TaskResultMismatch"


def test_refresh_reads_the_outcome_the_worker_wrote(run_worker):
    result = tasks.add.enqueue(2, 3)
    run_worker()

    assert result.status == TaskResultStatus.READY  # a result is a snapshot until refreshed
    result.refresh()

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.is_finished
    assert result.return_value == 5
    assert result.attempts == 1
    assert result.errors == []
    assert result.started_at >= result.enqueued_at
    assert result.last_attempted_at == result.started_at
    assert result.finished_at >= result.started_at
    assert effects("framework-add") == ["2+3"]


def test_arefresh_reads_the_outcome_from_async_code(run_worker):
    result = tasks.add.enqueue(4, 5)
    run_worker()

    run_async(result.arefresh())

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 9


# The framework's validation errors


def test_an_unknown_queue_is_refused_on_using_and_nothing_is_stored():
    with pytest.raises(InvalidTask, match="Queue 'elsewhere' is not valid for backend"):
        tasks.noop.using(queue_name="elsewhere")
    assert not Execution.objects.exists()


@pytest.mark.parametrize("priority", [101, -101, 1.5])
def test_a_priority_outside_the_framework_range_is_refused(priority):
    with pytest.raises(InvalidTask, match="priority must be a whole number"):
        tasks.noop.using(priority=priority)


def test_a_naive_run_after_is_refused_when_time_zones_are_on():
    with pytest.raises(InvalidTask, match="run_after must be an aware datetime"):
        tasks.noop.using(run_after=timezone.now().replace(tzinfo=None))


def test_a_task_that_is_not_module_level_is_refused():
    def local():
        return None

    with pytest.raises(InvalidTask, match="module level"):
        task(local)


def test_a_task_that_takes_context_needs_a_context_argument():
    with pytest.raises(InvalidTask, match="first argument of 'context'"):
        task(takes_context=True)(tasks.record.func)


def test_validation_runs_again_on_enqueue():
    """A task made valid under one configuration is checked again when enqueued."""
    with override_settings(TASKS={"default": {"BACKEND": BACKEND, "QUEUES": ["elsewhere"]}}):
        elsewhere = tasks.noop.using(queue_name="elsewhere")

    with pytest.raises(InvalidTask, match="Queue 'elsewhere' is not valid for backend"):
        elsewhere.enqueue()
    with pytest.raises(InvalidTask, match="Queue 'elsewhere' is not valid for backend"):
        run_async(elsewhere.aenqueue())
    assert not Execution.objects.exists()


def test_a_queue_name_longer_than_ours_is_refused():
    with (
        override_settings(TASKS={"default": {"BACKEND": BACKEND, "QUEUES": []}}),
        pytest.raises(InvalidTask, match="longer than 100 characters"),
    ):
        tasks.noop.using(queue_name="q" * 101)


def test_a_django_task_cannot_take_the_name_of_a_conductor_task():
    from django_conductor import task as conductor_task
    from django_conductor.registry import registry

    def clash():
        return None

    clash.__module__, clash.__qualname__ = "tests.testapp.clash", "clash"
    conductor_task(name="tests.testapp.clash.clash")(clash)
    try:
        with pytest.raises(
            InvalidTask, match=re.escape("already registered as 'tests.testapp.clash.clash'")
        ):
            task(clash)
    finally:
        registry.unregister("tests.testapp.clash.clash")


# Transactions


def test_enqueue_in_a_transaction_is_seen_by_workers_only_once_it_commits():
    with transaction.atomic():
        result = tasks.noop.enqueue()
        assert Execution.objects.count() == 1
        assert task_backends["default"].get_result(result.id) == result
        assert count_seen_by_another_connection() == 0
    assert count_seen_by_another_connection() == 1


def test_enqueue_in_a_transaction_that_rolls_back_leaves_nothing():
    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.noop.enqueue()
        raise RuntimeError("roll back")
    assert not Execution.objects.exists()


def test_enqueue_on_commit_stores_the_task_when_the_transaction_commits():
    """What the framework documents for enqueueing after commit works as it says."""
    with transaction.atomic():
        transaction.on_commit(partial(tasks.record.enqueue, "after-commit"))
        assert not Execution.objects.exists()
    assert Execution.objects.get().payload["args"] == ["after-commit"]

    with pytest.raises(RuntimeError), transaction.atomic():
        transaction.on_commit(partial(tasks.record.enqueue, "rolled-back"))
        raise RuntimeError("roll back")
    assert Execution.objects.count() == 1


# Running on the worker


def test_the_worker_runs_a_sync_and_an_async_task(run_worker):
    sync_result = tasks.add.enqueue(1, 2)
    async_result = tasks.add_async.enqueue(3, 4)
    run_worker()

    sync_result.refresh()
    async_result.refresh()
    assert (sync_result.status, sync_result.return_value) == (TaskResultStatus.SUCCESSFUL, 3)
    assert (async_result.status, async_result.return_value) == (TaskResultStatus.SUCCESSFUL, 7)
    assert Execution.objects.get(pk=sync_result.id).result == 3


def test_the_return_value_is_normalised_as_the_framework_does(run_worker):
    result = tasks.meaning_of_life.enqueue()
    run_worker()

    result.refresh()
    assert result.return_value == {"answer": 42, "pair": [1, 2]}


def test_a_task_that_takes_context_gets_its_result_and_attempt(run_worker):
    result = tasks.context_id.enqueue()
    run_worker()

    result.refresh()
    assert result.return_value == {"id": result.id, "attempt": 1}


def test_a_failing_task_is_retried_per_our_rules_and_succeeds(run_worker):
    result = tasks.fails_first_run.enqueue("k")
    run_worker()

    result.refresh()
    assert result.status == TaskResultStatus.READY  # waiting out its backoff
    assert result.attempts == 1
    assert result.errors == []
    execution = Execution.objects.get(pk=result.id)
    assert "RuntimeError: first run fails" in execution.error
    assert execution.run_at > timezone.now() + timedelta(seconds=5)  # the 15 s default

    assert run_now(execution.pk)
    run_worker()

    result.refresh()
    assert (result.status, result.return_value, result.attempts) == (
        TaskResultStatus.SUCCESSFUL,
        2,
        2,
    )
    assert effects("framework-attempt") == ["k:1", "k:2"]


@override_settings(TASKS=ONE_ATTEMPT)
def test_a_task_that_fails_for_good_reports_its_error(run_worker):
    result = tasks.fails.enqueue()
    run_worker()

    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.is_finished
    assert result.finished_at >= result.started_at >= result.enqueued_at
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    [error] = result.errors
    assert error.exception_class is ValueError
    assert error.traceback.endswith("ValueError: This task failed due to ValueError\n")
    failure = FailedExecution.objects.get(execution_id=result.id)
    assert failure.error == "ValueError: This task failed due to ValueError"


@override_settings(TASKS=ONE_ATTEMPT)
def test_a_complex_exception_keeps_its_traceback(run_worker):
    result = tasks.complex_exception.enqueue()
    run_worker()

    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is ValueError
    assert 'ValueError(ValueError("This task failed"))' in result.errors[0].traceback


@override_settings(TASKS=ONE_ATTEMPT)
def test_a_task_that_exits_fails_and_the_worker_goes_on(run_worker):
    exits = tasks.exits.enqueue()
    after = tasks.add.enqueue(1, 1)
    run_worker(concurrency=1)

    exits.refresh()
    after.refresh()
    assert exits.status == TaskResultStatus.FAILED
    assert exits.errors[0].exception_class is TaskExited
    assert "SystemExit" in exits.errors[0].traceback
    assert after.status == TaskResultStatus.SUCCESSFUL


def test_a_return_value_that_cannot_be_stored_fails_at_once(run_worker):
    result = tasks.unstorable_return.enqueue()
    run_worker()

    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 1  # not retried: it would return the same
    assert result.errors[0].exception_class is NonRetryableError
    assert "return value is of type function" in result.errors[0].traceback


@override_settings(TASKS=ONE_ATTEMPT)
def test_retrying_a_failed_task_runs_it_again_and_keeps_the_failure(run_worker):
    result = tasks.fails_first_run.enqueue("r")
    run_worker()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED

    assert retry(int(result.id))
    result.refresh()
    assert result.status == TaskResultStatus.READY
    run_worker()

    result.refresh()
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 1)
    assert [e.exception_class for e in result.errors] == [RuntimeError]
    assert effects("framework-attempt") == ["r:1", "r:1"]  # a fresh attempt budget


def test_a_cancelled_task_reports_failed_with_the_reason(run_worker):
    result = tasks.record.enqueue("never")
    assert cancel(int(result.id), reason="Not wanted")
    run_worker()

    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class is ExecutionCancelled
    assert error.traceback == "Not wanted"
    assert effects("framework-ran") == []


def test_higher_priority_runs_first_then_earlier_run_after(run_worker):
    now = timezone.now()
    tasks.record.using(priority=-5).enqueue("low")
    tasks.record.using(priority=10, run_after=now - timedelta(minutes=1)).enqueue("high-later")
    tasks.record.using(priority=10, run_after=now - timedelta(minutes=5)).enqueue("high-first")
    tasks.record.enqueue("default")
    tasks.record.using(priority=100, run_after=now + timedelta(hours=1)).enqueue("future")
    run_worker(concurrency=1)

    assert effects("framework-ran") == ["high-first", "high-later", "default", "low"]


def test_run_after_defers_the_task_until_then(run_worker):
    when = timezone.now() + timedelta(hours=10)
    result = tasks.record.using(run_after=when).enqueue("later")

    assert result.task.run_after == when
    execution = Execution.objects.get(pk=result.id)
    assert execution.run_at == when
    assert task_backends["default"].get_result(result.id).task.run_after == when
    run_worker()
    assert effects("framework-ran") == []

    Execution.objects.filter(pk=result.id).update(run_at=timezone.now())
    run_worker()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.task.run_after == when


@override_settings(TASKS={"default": {"BACKEND": BACKEND, "QUEUES": ["default", "mail"]}})
def test_a_worker_runs_only_the_queues_it_serves(run_worker):
    mail = tasks.record.using(queue_name="mail").enqueue("mail")
    assert Execution.objects.get(pk=mail.id).queue == "mail"

    run_worker(queues=["default"])
    mail.refresh()
    assert mail.status == TaskResultStatus.READY

    run_worker(queues=["mail"])
    mail.refresh()
    assert mail.status == TaskResultStatus.SUCCESSFUL
    assert mail.task.queue_name == "mail"


@override_settings(
    TASKS={
        "default": {"BACKEND": BACKEND},
        "once": {"BACKEND": BACKEND, "OPTIONS": {"max_attempts": 1}},
    }
)
def test_each_backend_alias_keeps_its_own_attempt_budget(run_worker):
    result = tasks.fails.using(backend="once").enqueue()

    assert result.backend == "once"
    assert Execution.objects.get(pk=result.id).max_attempts == 1
    run_worker()
    again = task_backends["once"].get_result(result.id)
    assert again.status == TaskResultStatus.FAILED
    assert again.task.backend == "once"


def test_the_worker_sends_the_framework_signals(run_worker, received):
    result = tasks.add.enqueue(1, 2)
    run_worker()

    assert [(name, sender) for name, sender, _ in received] == [
        ("enqueued", ConductorBackend),
        ("started", ConductorBackend),
        ("finished", ConductorBackend),
    ]
    started, finished = received[1][2], received[2][2]
    assert started.id == finished.id == result.id
    assert started.status == TaskResultStatus.RUNNING
    assert started.attempts == 1
    assert finished.status == TaskResultStatus.SUCCESSFUL
    assert finished.return_value == 3


@override_settings(TASKS=ONE_ATTEMPT)
def test_a_failure_for_good_sends_finished_failed(run_worker, received):
    tasks.fails.enqueue()
    run_worker()

    finished = [result for name, _, result in received if name == "finished"]
    assert [result.status for result in finished] == [TaskResultStatus.FAILED]


def test_a_failure_with_attempts_left_sends_no_finished(run_worker, received):
    tasks.fails.enqueue()
    run_worker()

    assert [name for name, _, _ in received] == ["enqueued", "started"]


def test_a_django_task_shows_in_the_admin(admin_client, run_worker):
    result = tasks.record.enqueue("shown")
    run_worker()

    listing = admin_client.get(reverse("admin:django_conductor_execution_changelist"))
    detail = admin_client.get(reverse("admin:django_conductor_execution_change", args=[result.id]))
    assert listing.status_code == detail.status_code == 200
    assert name_of(tasks.record) in listing.content.decode()
    page = detail.content.decode()
    assert name_of(tasks.record) in page
    assert "shown" in page


# System checks


def test_a_configured_backend_passes_its_checks():
    assert list(task_backends["default"].check()) == []


@override_settings(
    TASKS={
        "default": {
            "BACKEND": BACKEND,
            "OPTIONS": {"max_attempts": 0, "retries": 2},
            "ENQUEUE_ON_COMMIT": "yes",
        }
    }
)
def test_bad_options_are_system_check_errors():
    found = {message.id: message for message in checks.run_checks()}

    assert "unknown option 'retries'" in found["django_conductor.E102"].msg
    assert "max_attempts must be an integer of at least 1" in found["django_conductor.E102"].msg
    assert "ENQUEUE_ON_COMMIT must be True or False" in found["django_conductor.E103"].msg


@override_settings(TASKS={"default": {"BACKEND": BACKEND, "ENQUEUE_ON_COMMIT": False}})
def test_enqueue_on_commit_true_or_false_is_accepted():
    assert list(task_backends["default"].check()) == []


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (
            'Traceback (most recent call last):\n  File "x"\nValueError: boom\n',
            "builtins.ValueError",
        ),
        ('Traceback (most recent call last):\n  File "x"\nKeyError\n', "builtins.KeyError"),
        (
            'Traceback (most recent call last):\n  File "a"\nValueError: first\n\n'
            "During handling of the above exception, another exception occurred:\n\n"
            'Traceback (most recent call last):\n  File "b"\n    raise Oops()\n'
            "orders.errors.Oops: second\nwith a second line\nA note\n",
            "orders.errors.Oops",
        ),
        ("Worker w stopped renewing its lease", None),
        ('Traceback (most recent call last):\n  File "x"\n<weird>: thing\n', None),
    ],
)
def test_the_raised_class_is_read_from_the_traceback_end(text, path):
    assert raised_class(text) == path


# Real worker processes


@pytest.mark.slow
def test_a_worker_process_runs_an_enqueued_task(worker_process):
    result = tasks.add.enqueue(20, 22)
    worker = worker_process("--worker-id", "backend-worker")
    wait_until(lambda: Execution.objects.get(pk=result.id).status == "completed")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.output

    result.refresh()
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 42)
    assert f"{name_of(tasks.add)} [default]" in worker.output


@pytest.mark.slow
def test_sigkill_mid_task_another_worker_runs_it_after_the_lease_expires(worker_process):
    result = tasks.slow_first_run.enqueue("k", first=30, then=0.2)
    started = partial(SideEffect.objects.filter(kind="framework-started", value="k").count)
    worker_a = worker_process("--worker-id", "worker-a", env=SHORT_LEASE)
    wait_until(lambda: started() == 1)

    worker_a.signal(signal.SIGKILL)
    assert worker_a.wait() == -signal.SIGKILL, worker_a.output
    result.refresh()
    assert result.status == TaskResultStatus.RUNNING
    assert result.worker_ids == ["worker-a"]
    expires_at = Execution.objects.get(pk=result.id).lease_expires_at

    worker_b = worker_process("--worker-id", "worker-b", env=SHORT_LEASE)
    wait_until(lambda: Execution.objects.get(pk=result.id).status == "completed")
    worker_b.signal(signal.SIGTERM)
    assert worker_b.wait() == 0, worker_b.output

    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 2  # run whole again: a Django task has no steps
    assert result.attempts == 2
    second = SideEffect.objects.filter(kind="framework-started", value="k").latest("pk")
    assert second.created_at > expires_at
    assert effects("framework-finished") == ["k"]
    assert "stopped renewing its lease" in worker_b.output
    assert connection.is_usable()
