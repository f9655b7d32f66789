from datetime import timedelta

import pytest
from django.core.checks import run_checks
from django.db import connections
from django.db.utils import ConnectionHandler
from django.test import override_settings

from django_conductor import task
from django_conductor.checks import (
    check_listen_database,
    check_settings,
    check_tasks,
    database_errors,
)


def ids(errors):
    return [e.id for e in errors]


@pytest.mark.django_db
def test_the_test_project_passes_every_check():
    # The database-tagged checks too: Django 6.1 runs them against every alias by default
    # (5.2 and 6.0 only when asked), so ask on every version.
    assert run_checks(tags=["django_conductor"], databases=["default"]) == []


def test_e001_database_that_is_not_postgresql():
    handler = ConnectionHandler(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    )
    errors = database_errors(handler["default"], psycopg3=True)
    assert ids(errors) == ["django_conductor.E001"]
    assert "sqlite" in errors[0].msg and "ENGINE" in errors[0].hint


def test_e005_postgresql_through_psycopg2():
    errors = database_errors(connections["default"], psycopg3=False)
    assert ids(errors) == ["django_conductor.E005"]
    assert "psycopg" in errors[0].hint


def test_e002_duplicate_task_name(clean_registry):
    @task(name="twice")
    def first(event, ctx):
        pass

    @task(name="twice")
    def second(event, ctx):
        pass

    errors = check_tasks()
    assert ids(errors) == ["django_conductor.E002"]
    assert "first" in errors[0].msg and "second" in errors[0].msg
    assert errors[0].hint


def test_e003_unknown_task_option(clean_registry):
    @task(name="typo", max_atempts=5)
    def typo(event, ctx):
        pass

    errors = check_tasks()
    assert ids(errors) == ["django_conductor.E003"]
    assert "unknown option max_atempts=5" in errors[0].msg


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": "3"}, "max_attempts"),
        ({"priority": 1.5}, "priority"),
        ({"queue": ""}, "queue"),
        ({"concurrency": 0}, "concurrency"),
        ({"batch": -1}, "batch"),
        ({"retry_delays": [5, -1]}, "retry_delays"),
        ({"retry_delays": "15s"}, "retry_delays"),
        ({"retry_delays": []}, "retry_delays"),
    ],
)
def test_e003_invalid_task_option_values(clean_registry, options, fragment):
    @task(name="bad-options", **options)
    def bad(event, ctx):
        pass

    errors = [e for e in check_tasks() if e.is_serious()]
    assert ids(errors) == ["django_conductor.E003"]
    assert fragment in errors[0].msg


@pytest.mark.parametrize(
    ("window", "fragment"),
    [
        (("22:00",), "a pair of 'HH:MM' times"),
        ("22:00-06:00", "a pair of 'HH:MM' times"),
        (("24:00", "06:00"), "a pair of 'HH:MM' times"),
        (("22:00", "06:60"), "a pair of 'HH:MM' times"),
        (("9:00", "17:00"), "a pair of 'HH:MM' times"),
        (("22:00", 6), "a pair of 'HH:MM' times"),
        (("22:00", "22:00"), "starts where it ends"),
    ],
)
def test_e003_a_bad_window(clean_registry, window, fragment):
    @task(name="bad-window", window=window)
    def bad(event, ctx):
        pass

    (error,) = check_tasks()
    assert error.id == "django_conductor.E003"
    assert fragment in error.msg and "window" in error.msg
    assert bad.parsed_window is None


def test_a_good_window_passes_every_check_and_is_enforced(clean_registry):
    @task(name="nightly", window=["22:00", "06:00"])
    def nightly(event, ctx):
        pass

    @task(name="office-hours", window=("00:00", "23:59"))
    def office(event, ctx):
        pass

    assert check_tasks() == []  # no E003: a good window
    assert str(nightly.parsed_window) == "window 22:00-06:00"


@pytest.mark.parametrize(
    "overrides",
    [
        {"CONDUCTOR_CONCURRENCY": 0},
        {"CONDUCTOR_CONCURRENCY": "10"},
        {"CONDUCTOR_PREFETCH": -1},
        {"CONDUCTOR_PREFETCH": 2.5},
        {"CONDUCTOR_LEASE": -1},
        {"CONDUCTOR_POLL_INTERVAL": "soon"},
        {"CONDUCTOR_SHUTDOWN_GRACE": True},
        {"CONDUCTOR_RETRY_DELAYS": []},
        {"CONDUCTOR_RETRY_DELAYS": [10, -5]},
    ],
)
def test_e004_settings_of_the_wrong_kind(overrides):
    with override_settings(**overrides):
        errors = check_settings()
    assert ids(errors) == ["django_conductor.E004"]
    assert next(iter(overrides)) in errors[0].msg


def test_e004_accepts_timedeltas():
    with override_settings(
        CONDUCTOR_LEASE=timedelta(minutes=1), CONDUCTOR_RETRY_DELAYS=[timedelta(0)]
    ):
        assert check_settings() == []


def test_e006_heartbeat_must_be_well_inside_the_lease():
    with override_settings(CONDUCTOR_LEASE=10, CONDUCTOR_HEARTBEAT_INTERVAL=6):
        errors = check_settings()
    assert ids(errors) == ["django_conductor.E006"]


def test_e007_a_trigger_that_is_none_of_the_three(clean_registry):
    @task(name="odd-trigger", triggers=["every morning"])
    def odd(event, ctx):
        pass

    errors = check_tasks()
    assert ids(errors) == ["django_conductor.E007"]
    assert "triggers must be cron(), on_event() or on_model(), not 'every morning'" in errors[0].msg


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (5432, "not 5432"),
        ("direct", "DATABASES has no 'direct'"),
        ("sqlite", "DATABASES['sqlite'] is not PostgreSQL"),
        ({"HOST": "db", "ENGINE": "x", "PORTS": 1}, "unknown keys ENGINE, PORTS"),
        ({"HOST": 5}, "its HOST must be a string"),
        ({"PORT": True}, "its PORT must be a number or a string"),
        ({"OPTIONS": "sslmode=require"}, "its OPTIONS must be a dict"),
    ],
)
def test_e009_a_listen_database_that_names_no_usable_database(monkeypatch, value, fragment):
    sqlite = {**connections["default"].settings_dict, "ENGINE": "django.db.backends.sqlite3"}
    monkeypatch.setitem(connections.settings, "sqlite", sqlite)
    with override_settings(CONDUCTOR_LISTEN_DATABASE=value):
        errors = check_listen_database()
    assert ids(errors) == ["django_conductor.E009"]
    assert errors[0].msg.startswith("CONDUCTOR_LISTEN_DATABASE must be None, the alias of")
    assert fragment in errors[0].msg


@pytest.mark.parametrize(
    "value", [None, "default", {}, {"HOST": "10.0.0.5", "PORT": 5432, "OPTIONS": {}}]
)
def test_e009_passes_an_alias_a_dict_of_keys_or_none(value):
    with override_settings(CONDUCTOR_LISTEN_DATABASE=value):
        assert check_listen_database() == []
