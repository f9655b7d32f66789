"""invoke(throttle=...) keeps the first call of each slot and debounce the last, run at the
next slot's start; the dedupe key partitions the slots; the database's unique key keeps one
per slot however many call at once; bad combinations store nothing."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction

from django_conductor import invoke
from django_conductor.models import Execution
from django_conductor.registry import registry
from tests.conftest import database_now

HOUR = timedelta(days=1)  # slots of a day: the tests skip only within a minute of its end
echo = registry.get("echo")


def away_from_a_slot_edge(length=HOUR):
    """The tests need the slot not to change under them: a day's slots leave a minute's
    margin unless the clock is within a minute of midnight UTC."""
    now = database_now()
    into = now.timestamp() % length.total_seconds()
    if into > length.total_seconds() - 60:
        pytest.skip("too close to the end of the slot")
    return now


def slot_start(now, length=HOUR):
    seconds = length.total_seconds()
    return datetime.fromtimestamp(now.timestamp() // seconds * seconds, tz=UTC)


def test_throttle_keeps_the_first_call_of_a_slot(db):
    away_from_a_slot_edge()
    first = echo.invoke({"n": 1}, throttle=HOUR)
    assert first is not None
    assert echo.invoke({"n": 2}, throttle=HOUR) is None
    assert invoke("echo", {"n": 3}, throttle=HOUR.total_seconds()) is None
    (kept,) = Execution.objects.all()
    assert (kept.pk, kept.payload) == (first.id, {"n": 1})


def test_the_dedupe_key_partitions_the_slots(db):
    away_from_a_slot_edge()
    a = echo.invoke({"n": 1}, throttle=HOUR, dedupe_key="customer-1")
    b = echo.invoke({"n": 2}, throttle=HOUR, dedupe_key="customer-2")
    assert a is not None and b is not None and a.id != b.id
    assert echo.invoke({"n": 3}, throttle=HOUR, dedupe_key="customer-1") is None
    assert Execution.objects.count() == 2


def test_a_new_slot_takes_a_new_call(db):
    # Slots of a second: the next second is another slot.
    assert echo.invoke({"n": 1}, throttle=1) is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(1.1)")
    assert echo.invoke({"n": 2}, throttle=1) is not None
    assert Execution.objects.count() == 2


def test_eight_threads_invoking_at_once_store_exactly_one(transactional_db):
    away_from_a_slot_edge()
    barrier = threading.Barrier(8)
    kept = []

    def call(n):
        try:
            barrier.wait()
            handle = echo.invoke({"n": n}, throttle=HOUR)
            kept.append(handle)
        finally:
            connection.close()

    threads = [threading.Thread(target=call, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(kept) == 8
    assert len([h for h in kept if h is not None]) == 1
    assert Execution.objects.count() == 1


def test_invoke_many_with_throttle_keeps_the_slots_first(db):
    away_from_a_slot_edge()
    handles = echo.invoke_many([{"n": 1}, {"n": 2}, {"n": 3}], throttle=HOUR)
    assert len(handles) == 1
    assert Execution.objects.get().payload == {"n": 1}


def test_debounce_keeps_the_last_call_and_runs_it_at_the_next_slots_start(db):
    now = away_from_a_slot_edge()
    first = echo.invoke({"n": 1}, debounce=HOUR)
    second = echo.invoke({"n": 2}, debounce=HOUR)
    assert first.id == second.id
    execution = Execution.objects.get()
    assert execution.payload == {"n": 2}
    assert execution.run_at == slot_start(now) + HOUR


def test_a_call_after_its_slots_run_began_goes_to_the_next_slot(db):
    away_from_a_slot_edge()
    first = echo.invoke({"n": 1}, debounce=HOUR)
    Execution.objects.filter(pk=first.id).update(status="running", claims=1)  # claimed
    later = echo.invoke({"n": 2}, debounce=HOUR)
    assert later.id != first.id
    assert Execution.objects.get(pk=first.id).payload == {"n": 1}  # the running one keeps its
    assert (
        Execution.objects.get(pk=later.id).run_at
        == Execution.objects.get(pk=first.id).run_at + HOUR
    )


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"throttle": HOUR, "debounce": HOUR}, "not both"),
        ({"debounce": HOUR, "delay": 5}, "no run_at or delay"),
        ({"throttle": 0}, "throttle must be a positive"),
        ({"debounce": "soon"}, "debounce must be a positive"),
        ({"throttle": -1}, "throttle must be a positive"),
    ],
)
def test_bad_options_are_refused_and_store_nothing(db, options, words):
    with pytest.raises(ValueError, match=words):
        echo.invoke({"n": 1}, **options)
    assert not Execution.objects.exists()


def test_invoke_many_takes_no_debounce(db):
    from django_conductor.api import enqueue

    with pytest.raises(ValueError, match="invoke_many takes no debounce"):
        enqueue(echo, [1, 2], debounce=HOUR)
    assert not Execution.objects.exists()


def test_a_throttled_invoke_is_rolled_back_with_the_callers_transaction(db):
    away_from_a_slot_edge()
    with pytest.raises(RuntimeError), transaction.atomic():
        assert echo.invoke({"n": 1}, throttle=HOUR) is not None
        raise RuntimeError
    assert echo.invoke({"n": 2}, throttle=HOUR) is not None  # the slot is free again
