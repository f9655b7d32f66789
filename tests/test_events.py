"""Custom events: emit fans out to every subscribed task in the caller's transaction, in one
statement; when and fields shape who gets what; ctx.emit is a step; bad input stores
nothing."""

import json

import pytest
from django.core import checks
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_conductor import ConductorError, PayloadError, emit, invoke, on_event, task
from django_conductor.models import Execution, Step
from django_conductor.registry import registry
from tests.testapp.models import SideEffect


def by_task():
    return {e.task_name: e for e in Execution.objects.filter(event_name="order.paid")}


def test_emit_starts_one_execution_per_subscriber_in_one_statement(db):
    paid = {"id": 7, "amount": 250, "region": "eu"}
    with CaptureQueriesContext(connection) as queries:
        handles = emit("order.paid", paid)
    assert len([q for q in queries if "INSERT" in q["sql"]]) == 1
    started = by_task()
    assert sorted(started) == ["on-paid", "on-paid-big", "on-paid-eu"]
    assert [h.id for h in handles] == [started[name].pk for name in sorted(started)]
    assert started["on-paid"].payload == paid
    assert started["on-paid-big"].payload == {"id": 7}  # fields=["id"]
    assert started["on-paid-eu"].payload == paid


@pytest.mark.parametrize(
    ("payload", "subscribers"),
    [
        ({"id": 1, "amount": 5, "region": "us"}, ["on-paid"]),
        ({"id": 2, "amount": 500, "region": "us"}, ["on-paid", "on-paid-big"]),
        ({"id": 3, "amount": 5, "region": "eu"}, ["on-paid", "on-paid-eu"]),
    ],
)
def test_when_keeps_only_the_events_a_task_wants(db, payload, subscribers):
    emit("order.paid", payload)
    assert sorted(by_task()) == subscribers


def test_an_emit_is_rolled_back_with_the_callers_transaction(db):
    with pytest.raises(RuntimeError), transaction.atomic():
        assert len(emit("order.paid", {"id": 1, "amount": 500, "region": "eu"})) == 3
        raise RuntimeError
    assert not Execution.objects.exists()


def test_an_event_nobody_listens_to_starts_nothing(db):
    assert emit("nobody.listens", {"x": 1}) == []
    assert not Execution.objects.exists()


@pytest.mark.parametrize(
    ("name", "payload", "error", "words"),
    [
        ("", {}, ValueError, "name must be"),
        ("order.paid", {"when": {1, 2}}, PayloadError, "not JSON"),
        ("order.paid", [1, 2], ConductorError, "when= of task 'on-paid-big'.*raised TypeError"),
    ],
)
def test_bad_input_to_emit_is_refused_and_stores_nothing(db, name, payload, error, words):
    with pytest.raises(error, match=words):
        emit(name, payload)
    assert not Execution.objects.exists()


def test_a_subscriber_that_takes_fields_needs_a_dict_payload(db):
    listener = task(name="takes-fields", triggers=[on_event("list.event", fields=["id"])])(handler)
    try:
        with pytest.raises(PayloadError, match="must be a dict"):
            emit("list.event", [1, 2])
    finally:
        registry.unregister(listener.name)
    assert not Execution.objects.exists()


def test_subscribers_run_with_the_event_name_and_their_payload(run_worker):
    emit("order.paid", {"id": 9, "amount": 120, "region": "eu"})
    run_worker()
    values = sorted(SideEffect.objects.values_list("value", flat=True))
    seen = sorted((json.loads(v) for v in values), key=json.dumps)
    assert seen == [
        ["order.paid", {"id": 9, "amount": 120, "region": "eu"}],
        ["order.paid", {"id": 9, "amount": 120, "region": "eu"}],
        ["order.paid", {"id": 9}],
    ]


def test_ctx_emit_is_a_step_that_a_retry_does_not_emit_again(run_worker):
    handle = invoke("emits-then-fails-once", {"id": 4, "amount": 1, "region": "us"})
    run_worker()
    parent = Execution.objects.get(pk=handle.id)
    assert (parent.status, parent.attempts, parent.result) == ("completed", 2, [1, 1])
    names = list(Step.objects.filter(execution=parent).values_list("name", flat=True))
    assert names == ["emit 'order.paid'", "emit 'order.paid' #2"]
    # Two emits in all, each reaching the one subscriber that wants a small US order.
    emitted = Execution.objects.filter(event_name="order.paid")
    assert sorted(e.payload.get("again", False) for e in emitted) == [False, True]


def handler(event, ctx):
    return None


def test_a_bad_subscription_is_check_error_e007():
    made = [
        task(name="bad-when", triggers=[on_event("x", when=42)])(handler),
        task(name="bad-fields", triggers=[on_event("x", fields=[1])])(handler),
        task(name="bad-name", triggers=[on_event("")])(handler),
    ]
    try:
        errors = [e for e in checks.run_checks() if e.id == "django_conductor.E007"]
        assert len(errors) == 3
        assert {e.obj for e in errors} == set(made)
    finally:
        for made_task in made:
            registry.unregister(made_task.name)
