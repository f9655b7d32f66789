"""Row triggers on Django models: an on_model subscription fires for save(), bulk_create(),
queryset.update(), delete() and raw SQL alike, in the writer's transaction; columns and
when shape it; triggers follow the code on migrate; a missing one is warning W008."""

import json
import os
import subprocess
import sys

import pytest
from django.core import checks
from django.core.management import call_command
from django.db import connection, transaction

from django_conductor import on_model, task
from django_conductor.models import Execution
from django_conductor.registry import registry
from django_conductor.store.row_triggers import installed
from django_conductor.triggers.rows import sync
from tests.conftest import ROOT
from tests.testapp.models import Order, Shipment, SideEffect

pytestmark = pytest.mark.django_db(transaction=True)


def started(task_name):
    return list(Execution.objects.filter(task_name=task_name).order_by("id"))


def test_every_way_of_inserting_fires_the_insert_trigger():
    first = Order.objects.create(total=5)
    Order.objects.bulk_create([Order(total=1), Order(total=2)])
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO testapp_order (total, status, note) VALUES (7, 'raw', '') RETURNING id"
        )
    runs = started("on-order-inserted")
    assert len(runs) == 4
    payload = runs[0].payload
    assert (payload["op"], payload["table"], payload["old"]) == ("insert", "testapp_order", None)
    assert payload["new"] == {"id": first.pk, "total": 5, "status": "new", "note": ""}
    assert sorted(r.payload["new"]["total"] for r in runs) == [1, 2, 5, 7]
    assert {r.event_name for r in runs} == {"testapp.order.insert"}


def test_a_rolled_back_write_starts_nothing():
    with pytest.raises(RuntimeError), transaction.atomic():
        Order.objects.create(total=3)
        assert len(started("on-order-inserted")) == 1
        raise RuntimeError
    assert started("on-order-inserted") == []


def test_an_update_fires_only_when_a_listed_column_changes_and_when_holds():
    order = Order.objects.create(total=10)
    Order.objects.filter(pk=order.pk).update(status="paid")  # total unchanged
    Order.objects.filter(pk=order.pk).update(total=50)  # changed, but when fails
    assert started("on-order-total-changed") == []
    order.total = 150
    order.save()  # save() writes every column: the listed one changed
    Order.objects.filter(pk=order.pk).update(total=200, note="big")
    runs = started("on-order-total-changed")
    assert [(r.payload["old"], r.payload["new"]) for r in runs] == [
        ({"total": 50}, {"total": 150}),
        ({"total": 150}, {"total": 200}),
    ]


def test_delete_fires_for_the_orm_and_for_raw_sql():
    kept, gone = Order.objects.create(total=1, status="a"), Order.objects.create(total=2)
    gone_id = gone.pk
    gone.delete()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM testapp_order WHERE id = %s", [kept.pk])
    runs = started("on-order-deleted")
    assert [r.payload["old"] for r in runs] == [
        {"id": gone_id, "status": "new"},
        {"id": kept.pk, "status": "a"},
    ]
    assert all(r.payload["new"] is None and r.payload["op"] == "delete" for r in runs)


def test_a_mixed_case_table_name_works():
    Shipment.objects.create(label="box")
    (run,) = started("on-shipment")
    assert run.payload["table"] == "Conductor Shipments"
    assert run.payload["new"]["label"] == "box"


def test_a_table_in_another_schema_works_whatever_the_search_path():
    with connection.cursor() as cursor:
        cursor.execute("SET search_path TO conductor_other")  # our tables are not on it
        cursor.execute("INSERT INTO widget (name) VALUES ('gear')")
        cursor.execute("RESET search_path")
    (run,) = started("on-widget")
    assert (run.payload["table"], run.payload["new"]["name"]) == ("widget", "gear")


def test_the_subscribers_run_with_the_event_name_and_the_row(run_worker):
    Order.objects.create(total=120)
    run_worker()
    (value,) = SideEffect.objects.filter(kind="row").values_list("value", flat=True)
    name, payload = json.loads(value)
    assert name == "testapp.order.insert" and payload["new"]["total"] == 120


def handler(event, ctx):
    return None


def test_triggers_follow_the_code_on_migrate_and_a_missing_one_is_w008():
    names = {t.name for t in installed_now()}
    assert len(names) == 5
    extra = task(name="on-order-noted", triggers=[on_model(Order, "update", ["note"])])(handler)
    try:
        errors = [e for e in checks.run_checks(databases=["default"]) if e.id.endswith("W008")]
        assert len(errors) == 1 and "on-order-noted" in errors[0].msg
        call_command("migrate", verbosity=0)  # its post_migrate installs what is missing
        assert len(installed_now()) == 6
        assert not [e for e in checks.run_checks(databases=["default"]) if e.id.endswith("W008")]
        order = Order.objects.create()
        Order.objects.filter(pk=order.pk).update(note="hello")
        assert len(started("on-order-noted")) == 1
    finally:
        registry.unregister(extra.name)
    new, dropped, missing = sync()  # the task is gone from the code: its trigger goes
    assert (new, missing, len(dropped)) == ([], [], 1)
    assert {t.name for t in installed_now()} == names


def installed_now():
    with connection.cursor() as cursor:
        return installed(cursor)


def test_a_bad_subscription_is_check_error_e007():
    made = [
        task(name="bad-op", triggers=[on_model(Order, "upsert")])(handler),
        task(name="bad-model", triggers=[on_model("testapp.Nope", "insert")])(handler),
        task(name="bad-columns", triggers=[on_model(Order, "update", ["nope"])])(handler),
    ]
    try:
        errors = [e for e in checks.run_checks() if e.id == "django_conductor.E007"]
        assert {e.obj for e in errors} == set(made)
    finally:
        for made_task in made:
            registry.unregister(made_task.name)


class RolledBack(Exception):
    pass


def test_without_the_executions_table_no_trigger_is_kept():
    """As after ``migrate django_conductor zero``: a trigger left would fail every write."""
    with pytest.raises(RolledBack), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE django_conductor_execution RENAME TO conductor_hidden")
        new, dropped, missing = sync()
        assert (new, missing, len(dropped)) == ([], [], 5)
        assert installed_now() == []
        Order.objects.create(total=1)  # no trigger left to fail on the missing table
        raise RolledBack
    assert len(installed_now()) == 5


@pytest.mark.parametrize("when", ["NEW.nope > 1", "NEW.total >>> 1"])
def test_a_when_postgresql_refuses_is_w008_and_breaks_no_write(when):
    bad = task(name="bad-when-sql", triggers=[on_model(Order, "insert", when=when)])(handler)
    try:
        new, _dropped, missing = sync()  # as migrate runs it: it does not fail
        assert new == [] and len(missing) == 1 and "bad-when-sql" in missing[0]
        errors = [e for e in checks.run_checks(databases=["default"]) if e.id.endswith("W008")]
        assert len(errors) == 1 and "does not work on its table" in errors[0].msg
        Order.objects.create(total=1)  # no trigger of it to fail the write
        assert started("bad-when-sql") == []
    finally:
        registry.unregister(bad.name)


def test_manage_py_migrate_of_a_fresh_database_installs_the_triggers(transactional_db):
    """``migrate`` runs the database checks first; a trigger that it is about to install
    must not stop it (the remedy the check names is ``migrate`` itself)."""
    fresh = f"{connection.settings_dict['NAME']}_fresh"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CONDUCTOR_DATABASE_NAME": fresh,
        "PYTHONPATH": str(ROOT),
    }

    def manage(*args):
        command = [sys.executable, "-m", "django", *args]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        return done.returncode, done.stdout + done.stderr

    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{fresh}"')
        cursor.execute(f'CREATE DATABASE "{fresh}"')
    try:
        code, output = manage("migrate", "-v", "0")
        assert code == 0, output
        code, output = manage("check", "--database", "default", "--fail-level", "WARNING")
        assert code == 0, output  # every trigger the tasks ask for is installed
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')
