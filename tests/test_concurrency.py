"""Concurrency limits (DESIGN.md: "Concurrency limit"): across real worker processes no more
than N executions of a limited task run at once, per key with ``concurrency_key``; a killed
worker's place comes back when its lease ends; sleeping executions hold none; a limit a new
worker writes holds for the workers already running."""

import signal

import pytest
from django.db import connection, connections, transaction

from django_conductor import emit, invoke
from django_conductor.models import ConcurrencyLimit, Execution, Status
from django_conductor.store.claims import claim
from django_conductor.store.limits import Defined, put_limits
from django_conductor.store.notify import connect_listener
from tests.testapp.limit_tasks import (
    limited_hang_first,
    limited_parent,
    limited_per_customer,
    limited_sleeper,
    limited_three,
)
from tests.testapp.models import Shipment, SideEffect

from .conftest import wait_until
from .test_worker_process import SHORT_LEASE

pytestmark = pytest.mark.slow


def most_at_once(key=None):
    """The most handlers that ran at once, from their "began" and "ended" records (of
    ``key`` only, when given); an end at the same instant as a start counts first."""
    spans = SideEffect.objects.filter(kind__in=("began", "ended"))
    moments = []
    for kind, value, at in spans.values_list("kind", "value", "created_at"):
        if key is None or value.split(":")[0] == key:
            moments.append((at, 0 if kind == "ended" else 1))
    running = most = 0
    for _, began in sorted(moments):
        running += 1 if began else -1
        most = max(most, running)
    return most


def statuses(handles):
    ids = [handle.id for handle in handles]
    return list(Execution.objects.filter(pk__in=ids).values_list("status", flat=True))


def all_completed(handles):
    return lambda: set(statuses(handles)) == {Status.COMPLETED}


def test_two_workers_never_run_more_than_the_limit(worker_process):
    handles = limited_three.invoke_many({"sleep": 0.3} for _ in range(18))
    workers = [
        worker_process("--burst", "--concurrency", "4", "--worker-id", name)
        for name in ("limit-a", "limit-b")
    ]
    assert [proc.wait(timeout=120) for proc in workers] == [0, 0], [proc.output for proc in workers]

    assert set(statuses(handles)) == {Status.COMPLETED}
    # Eight threads for eighteen executions: the limit, not the threads, held them back.
    assert 2 <= most_at_once() <= 3


def test_a_limit_per_key_runs_each_key_alone_and_the_keys_side_by_side(worker_process):
    handles = limited_per_customer.invoke_many(
        {"customer": {"id": customer}, "n": n} for n in range(5) for customer in (7, 8)
    )
    assert set(Execution.objects.values_list("concurrency_key", flat=True)) == {"7", "8"}
    workers = [
        worker_process("--burst", "--concurrency", "3", "--worker-id", name)
        for name in ("key-a", "key-b")
    ]
    assert [proc.wait(timeout=120) for proc in workers] == [0, 0]

    assert set(statuses(handles)) == {Status.COMPLETED}
    assert most_at_once("7") == most_at_once("8") == 1
    assert most_at_once() == 2


def test_a_killed_workers_place_comes_back_when_its_lease_ends(worker_process):
    hung, waiting = limited_hang_first.invoke(), limited_hang_first.invoke()
    first = worker_process("--concurrency", "2", "--worker-id", "doomed", env=SHORT_LEASE)
    wait_until(lambda: SideEffect.objects.filter(kind="began").exists(), timeout=60)
    # The limit is one: the second waits while the first runs, however many threads are free.
    assert sorted(statuses([hung, waiting])) == [Status.PENDING, Status.RUNNING]
    first.signal(signal.SIGKILL)
    first.wait(timeout=30)

    worker_process("--concurrency", "2", "--worker-id", "heir", env=SHORT_LEASE)
    wait_until(all_completed([hung, waiting]), timeout=90)
    assert Execution.objects.get(pk=hung.id).claims == 2
    # The killed run began and never ended; the two after it ran.
    assert SideEffect.objects.filter(kind="began").count() == 3
    assert SideEffect.objects.filter(kind="ended").count() == 2


def test_sleeping_executions_hold_no_place(run_worker):
    handles = [limited_sleeper.invoke() for _ in range(3)]
    run_worker(concurrency=2)

    assert statuses(handles) == [Status.SLEEPING] * 3
    assert SideEffect.objects.filter(kind="slept").count() == 3


def test_a_lowered_limit_holds_for_workers_already_running(worker_process):
    running = worker_process("--concurrency", "4", "--worker-id", "old-code")
    wait_until(lambda: ConcurrencyLimit.objects.filter(task_name="limited-three").exists())
    # A worker deployed with concurrency=1 starts and stores its limit; the one running
    # with concurrency=3 in its code claims by the stored one from its next claim on.
    with transaction.atomic(), connection.cursor() as cursor:
        put_limits(cursor, [Defined("limited-three", 1, "")])

    handles = limited_three.invoke_many({"sleep": 0.2} for _ in range(6))
    wait_until(all_completed(handles), timeout=90)
    running.signal(signal.SIGTERM)
    assert running.wait(timeout=60) == 0
    assert most_at_once() == 1


def test_a_limit_held_by_another_claim_is_skipped_not_waited_for(run_worker):
    other = limited_three.invoke({"sleep": 0})
    plain = invoke("noop")
    with connection.cursor() as cursor:
        put_limits(cursor, [Defined("limited-three", 3, "")])
    # Another worker mid-claim (or frozen in one) holds the limit's row.
    holder = connections.create_connection("default")
    try:
        holder.ensure_connection()
        holder.connection.execute("BEGIN")
        holder.connection.execute(
            "SELECT 1 FROM django_conductor_concurrencylimit FOR NO KEY UPDATE"
        )
        run_worker(concurrency=2)
        assert statuses([plain]) == [Status.COMPLETED]
        assert statuses([other]) == [Status.PENDING]
    finally:
        holder.close()
    run_worker(concurrency=2)
    assert statuses([other]) == [Status.COMPLETED]


def limit_row_free():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM django_conductor_concurrencylimit FOR NO KEY UPDATE SKIP LOCKED"
        )
        return cursor.fetchone() is not None


def test_a_claim_holds_its_limit_locks_only_while_it_runs(transactional_db):
    """The claim is one autocommit statement: a worker frozen, killed or cut off between
    claims holds no limit's lock, so no other worker waits for it."""
    with connection.cursor() as cursor:
        put_limits(cursor, [Defined("limited-three", 3, "")])
    ready = limited_three.invoke({"sleep": 0})
    with connect_listener() as claimer:
        (row,) = claim(
            claimer.cursor(),
            places=1,
            idle=1,
            worker="claimer",
            lease=600.0,
            queues=[],
            tasks=["limited-three"],
        )
        assert row.id == ready.id
        assert limit_row_free()
    claimed = Execution.objects.get(pk=ready.id)
    assert (claimed.status, claimed.lease_owner, claimed.attempts) == ("running", "claimer", 1)


def test_every_way_of_creating_executions_keys_them(db):
    direct = limited_per_customer.invoke({"customer": {"id": 1}})
    (many,) = limited_per_customer.invoke_many([{"customer": {"id": "a b"}}])
    deduped = limited_per_customer.invoke({"customer": {"id": 2}}, dedupe_key="k")
    missing = limited_per_customer.invoke({"no": "customer"})
    whole = limited_three.invoke({"sleep": 0})
    plain = invoke("noop")
    (emitted,) = emit("customer.seen", {"customer": {"id": 3}})
    Shipment.objects.create(label="box")
    parent = limited_parent.invoke()
    keys = dict(Execution.objects.values_list("id", "concurrency_key"))
    by_task = dict(Execution.objects.values_list("task_name", "concurrency_key"))
    assert keys[direct.id] == "1"
    assert keys[many.id] == "a b"
    assert keys[deduped.id] == "2"
    assert keys[missing.id] == ""
    assert keys[whole.id] == ""
    assert keys[plain.id] is None
    assert keys[emitted.id] == "3"
    assert by_task["on-shipment"] == "box"
    assert keys[parent.id] is None


def test_a_childs_key_comes_from_its_payload(run_worker):
    parent = limited_parent.invoke()
    run_worker(concurrency=2)
    assert parent.status() == Status.COMPLETED
    child = Execution.objects.get(parent_id=parent.id)
    assert child.concurrency_key == "9"


def test_a_changed_limit_keys_unfinished_executions_anew(transactional_db):
    handle = invoke("noop", {"customer": {"id": 5}})
    keyed = lambda: Execution.objects.get(pk=handle.id).concurrency_key  # noqa: E731
    with connection.cursor() as cursor:
        assert put_limits(cursor, [Defined("noop", 2, "customer.id")])
        assert keyed() == "5"
        assert put_limits(cursor, [Defined("noop", 2, "customer.id")]) == []  # unchanged
        put_limits(cursor, [Defined("noop", 2, "")])
        assert keyed() == ""
        put_limits(cursor, [Defined("noop", None, None)])
        assert keyed() is None
    assert not ConcurrencyLimit.objects.exists()
