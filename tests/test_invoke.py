import json
import time
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from django_conductor import (
    ConductorError,
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionHandle,
    PayloadError,
    TablesMissing,
    UnknownTask,
    cancel,
    invoke,
    retry,
    run_now,
)
from django_conductor.models import Execution
from django_conductor.registry import registry
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db(transaction=True)


def test_invoke_in_rolled_back_transaction_leaves_nothing():
    with pytest.raises(RuntimeError), transaction.atomic():
        invoke("echo", {"a": 1})
        assert Execution.objects.count() == 1
        raise RuntimeError("the caller's transaction rolls back")
    assert Execution.objects.count() == 0


def test_invoke_stores_a_pending_execution_with_task_defaults():
    handle = invoke("always-fails", {"x": [1, 2]})
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.queue, execution.priority) == ("pending", "default", 0)
    assert execution.payload == {"x": [1, 2]}
    assert execution.max_attempts == 3
    assert execution.event_name == "conductor.invoke"
    assert handle.status() == "pending"


def test_dedupe_key_replaces_a_pending_executions_payload_and_keeps_its_id():
    first = invoke("echo", {"v": 1}, dedupe_key="order-7", priority=1)
    later = timezone.now() + timedelta(hours=1)
    second = invoke("echo", {"v": 2}, dedupe_key="order-7", priority=5, run_at=later)
    assert second.id == first.id
    execution = Execution.objects.get()
    assert execution.payload == {"v": 2}
    assert execution.priority == 5
    assert execution.run_at == later


def test_dedupe_key_of_a_running_execution_starts_a_new_one_and_supersedes_it():
    first = invoke("echo", {"v": 1}, dedupe_key="k")
    Execution.objects.filter(pk=first.id).update(status="running")
    second = invoke("echo", {"v": 2}, dedupe_key="k")
    assert second.id != first.id
    assert Execution.objects.get(pk=first.id).superseded
    assert Execution.objects.get(pk=second.id).payload == {"v": 2}
    assert invoke("echo", {"v": 3}, dedupe_key="k").id == second.id


def test_dedupe_key_of_a_finished_execution_starts_a_new_one():
    first = invoke("echo", {"v": 1}, dedupe_key="k")
    Execution.objects.filter(pk=first.id).update(status="completed")
    assert invoke("echo", {"v": 2}, dedupe_key="k").id != first.id


def test_dedupe_key_is_per_task_and_queue():
    a = invoke("echo", 1, dedupe_key="same")
    b = invoke("noop", 1, dedupe_key="same")
    c = invoke("echo", 1, dedupe_key="same", queue="other")
    assert len({a.id, b.id, c.id}) == 3


@pytest.mark.parametrize(
    ("payload", "where", "remedy"),
    [
        ({1, 2}, "payload is of type set", "pass a list"),
        (object(), "payload is of type object", "ids rather than objects"),
        (float("nan"), "payload is the float nan", "pass None or a string"),
        ({"when": timezone.now()}, "payload['when'] is of type datetime.datetime", "isoformat()"),
        ({"amount": Decimal("9.99")}, "payload['amount'] is of type decimal.Decimal", "str(value)"),
        ({"ids": [1, uuid.uuid4()]}, "payload['ids'][1] is of type uuid.UUID", "str(value)"),
        ({(1, 2): "x"}, "a key of payload", "use str keys"),
    ],
)
def test_payload_that_is_not_json_says_where_and_what_to_pass_and_stores_nothing(
    payload, where, remedy
):
    with pytest.raises(PayloadError, match="not JSON") as raised:
        invoke("echo", payload)
    assert where in str(raised.value)
    assert remedy in str(raised.value)
    assert Execution.objects.count() == 0


def test_a_model_instance_as_payload_is_told_to_pass_its_id():
    instance = SideEffect.objects.create(kind="row")
    with pytest.raises(PayloadError, match=r"payload\['row'\] is of type .*SideEffect") as raised:
        invoke("echo", {"row": instance})
    assert "pass its id (obj.pk)" in str(raised.value)
    assert Execution.objects.count() == 0


def test_wait_inside_the_transaction_that_invoked_says_to_wait_after_commit():
    with transaction.atomic():
        handle = invoke("echo", "kept")
        with pytest.raises(ConductorError, match="after the transaction commits") as raised:
            handle.wait(timeout=30)
        assert not isinstance(raised.value, ExecutionFailed)
    # Caught, the error leaves the caller's transaction intact: the invoke commits.
    assert Execution.objects.get(pk=handle.id).payload == "kept"


def test_wait_inside_a_later_transaction_sees_the_committed_execution(run_worker):
    handle = invoke("echo", "later")
    run_worker()
    with transaction.atomic():
        assert handle.wait(timeout=30) == {"echo": "later", "attempt": 1}


def test_waiting_for_an_execution_that_does_not_exist_raises_execution_failed():
    with pytest.raises(ExecutionFailed, match="does not exist"):
        ExecutionHandle(10**12).wait(timeout=30)


class RolledBack(Exception):
    """Undoes a test's change to the schema."""


BEFORE_MIGRATE = {
    "invoke": lambda: invoke("echo", {}),
    "status": lambda: ExecutionHandle(1).status(),
    "cancel": lambda: cancel(1),
    "retry": lambda: retry(1),
    "run_now": lambda: run_now(1),
}


@pytest.mark.parametrize("call", sorted(BEFORE_MIGRATE))
def test_calls_before_migrate_say_to_run_migrate(call):
    with pytest.raises(RolledBack), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE django_conductor_execution RENAME TO conductor_hidden")
        with pytest.raises(TablesMissing, match=r"run `python manage.py migrate`"):
            BEFORE_MIGRATE[call]()
        raise RolledBack  # the rename goes with the transaction
    assert invoke("echo", {}).status() == "pending"


def test_unknown_task_name_raises_unknown_task():
    with pytest.raises(UnknownTask, match="no-such-task"):
        invoke("no-such-task", {})
    assert Execution.objects.count() == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": "high"}, "priority"),
        ({"delay": "soon"}, "delay"),
        ({"run_at": "tomorrow"}, "run_at"),
        ({"run_at": timezone.now().replace(tzinfo=None)}, "timezone-aware"),
        ({"run_at": timezone.now(), "delay": 5}, "not both"),
        ({"queue": ""}, "queue"),
        ({"dedupe_key": ""}, "dedupe_key"),
    ],
)
def test_bad_invoke_options_raise_clear_errors_and_store_nothing(options, message):
    with pytest.raises(ValueError, match=message):
        invoke("echo", {}, **options)
    assert Execution.objects.count() == 0


def test_delay_sets_run_at_in_the_future_by_the_databases_clock():
    handle = invoke("echo", {}, delay=timedelta(minutes=5))
    execution = Execution.objects.get(pk=handle.id)
    assert execution.run_at - execution.created_at == timedelta(minutes=5)


def test_a_delay_inside_a_long_transaction_counts_from_the_invoke():
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(0.2)")  # the transaction started earlier
        handle = invoke("echo", {}, delay=60)
        with connection.cursor() as cursor:
            cursor.execute("SELECT now()")
            (began,) = cursor.fetchone()
    execution = Execution.objects.get(pk=handle.id)
    assert execution.run_at - execution.created_at == timedelta(seconds=60)
    assert execution.created_at >= began + timedelta(seconds=0.2)


def test_invoke_many_inserts_all_in_order_with_one_statement(django_assert_num_queries):
    task = registry.get("echo")
    with django_assert_num_queries(1):
        handles = task.invoke_many([{"n": n} for n in range(50)])
    stored = dict(Execution.objects.values_list("id", "payload"))
    assert [stored[h.id] for h in handles] == [{"n": n} for n in range(50)]


def test_invoke_is_one_statement_in_djangos_query_log(django_assert_num_queries):
    with django_assert_num_queries(1) as captured:
        handle = invoke("echo", {"n": 1})
    assert "django_conductor_invoke(" in captured.captured_queries[0]["sql"]
    assert Execution.objects.get(pk=handle.id).payload == {"n": 1}


def _prepared_inserts() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements "
            "WHERE statement LIKE '%django_conductor_invoke(%'"
        )
        return int(cursor.fetchone()[0])


def test_invoke_prepares_nothing_on_djangos_default_connection():
    """Django turns preparing off (``prepare_threshold`` None) for connection poolers."""
    for n in range(10):
        invoke("echo", {"n": n})
    assert connection.connection.prepare_threshold is None
    assert _prepared_inserts() == 0


def test_invoke_is_prepared_once_where_the_project_lets_psycopg_prepare():
    """As with ``OPTIONS["prepare_threshold"]``: the statement is prepared once and reused."""
    connection.ensure_connection()
    connection.connection.prepare_threshold = 0
    try:
        handles = [invoke("echo", {"n": n}, priority=n % 2) for n in range(10)]
        assert _prepared_inserts() == 1
    finally:
        connection.connection.prepare_threshold = None
    stored = dict(Execution.objects.values_list("id", "payload"))
    assert [stored[h.id] for h in handles] == [{"n": n} for n in range(10)]


def test_invoke_many_with_a_bad_payload_stores_nothing():
    with pytest.raises(PayloadError):
        registry.get("echo").invoke_many([{"ok": 1}, {"bad": {1}}])
    assert Execution.objects.count() == 0


def test_higher_priority_runs_first_then_earlier_run_at(run_worker):
    now = timezone.now()
    task = registry.get("record")
    task.invoke("low-early", priority=0, run_at=now - timedelta(seconds=30))
    task.invoke("high-late", priority=10, run_at=now - timedelta(seconds=1))
    task.invoke("high-early", priority=10, run_at=now - timedelta(seconds=20))
    task.invoke("low-late", priority=0, run_at=now - timedelta(seconds=10))
    task.invoke("future", priority=100, run_at=now + timedelta(hours=1))
    run_worker(concurrency=1)
    order = list(SideEffect.objects.order_by("id").values_list("value", flat=True))
    assert order == ["high-early", "high-late", "low-early", "low-late"]
    assert Execution.objects.get(payload="future").status == "pending"


def test_worker_serves_only_its_queues(run_worker):
    task = registry.get("record")
    task.invoke("a", queue="emails")
    task.invoke("b", queue="reports")
    run_worker(queues=["emails"])
    assert list(SideEffect.objects.values_list("value", flat=True)) == ["a"]


def test_wait_returns_the_result_soon_after_completion(run_worker):
    handle = invoke("echo", {"x": 1})
    run_worker()
    assert handle.wait(timeout=30) == {"echo": {"x": 1}, "attempt": 1}


def test_wait_is_woken_by_notify_not_by_polling(transactional_db):
    """A waiter is woken by the completion's notification, not by its 5 s re-check."""
    import threading

    handle = invoke("echo", {"x": 1})
    seen = {}

    def waiter():
        seen["result"] = handle.wait(timeout=10)
        seen["at"] = time.monotonic()

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.3)  # let the waiter start listening
    from django_conductor.worker import Worker

    worker = Worker(burst=True, install_signal_handlers=False, concurrency=1)
    worker.run()
    finished = time.monotonic()
    thread.join(30)
    assert seen["result"] == {"echo": {"x": 1}, "attempt": 1}
    assert seen["at"] - finished < 2.5  # half the re-check interval: a generous margin


def test_wait_times_out_with_timeout_error():
    handle = invoke("echo", {})
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        handle.wait(timeout=0.2)
    assert time.monotonic() - started < 10  # it gave up rather than waiting on


def test_wait_raises_execution_failed_with_the_error(run_worker):
    handle = invoke("non-retryable", {})
    run_worker()
    with pytest.raises(ExecutionFailed, match="no point retrying"):
        handle.wait(timeout=30)


def test_cancel_of_a_pending_execution_is_immediate_and_wait_raises():
    handle = invoke("echo", {})
    assert cancel(handle.id, reason="changed my mind")
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.error) == ("cancelled", "changed my mind")
    with pytest.raises(ExecutionCancelled, match="changed my mind"):
        handle.wait(timeout=30)
    assert not cancel(handle.id)


def test_invoke_notifies_listening_workers_on_commit(transactional_db):
    """On the plain channel for a task with no concurrency key, on the other for a batch
    task's (or a limited one's), which a worker must look for batches on."""
    from django_conductor.store.base import PLAIN_READY_CHANNEL, READY_CHANNEL
    from django_conductor.store.notify import connect_listener

    with connect_listener(READY_CHANNEL, PLAIN_READY_CHANNEL) as listener:
        with transaction.atomic():
            invoke("echo", {}, queue="mail")
            invoke("batch-insert", {"n": 1}, queue="rows")
            assert list(listener.notifies(timeout=0.2)) == []
        notes = list(listener.notifies(timeout=5, stop_after=2))
    assert sorted((n.channel, n.payload) for n in notes) == [
        (READY_CHANNEL, "rows"),
        (PLAIN_READY_CHANNEL, "mail"),
    ]


def test_payload_round_trips_unicode_and_nesting(run_worker):
    payload = {"name": "Zoë", "items": [1, 2.5, None, True, {"deep": ["x"]}]}
    handle = invoke("echo", payload)
    run_worker()
    assert json.dumps(handle.wait(1)["echo"], sort_keys=True) == json.dumps(payload, sort_keys=True)
