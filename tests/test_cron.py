"""Cron schedules in one process: ticks as computed (across daylight-saving changes),
schedule() and unschedule(), static schedules following the code, missed ticks, checks."""

import re
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from django.core import checks
from django.db import connection, transaction
from django.test import override_settings

from django_conductor import PayloadError, cron, schedule, task, unschedule
from django_conductor.definition import Task
from django_conductor.models import Execution, Schedule, Step
from django_conductor.registry import registry
from django_conductor.triggers.cron import describe, expression_problem, next_tick
from django_conductor.triggers.schedules import advance_due, resume, sync_static
from tests.conftest import database_now

BERLIN = "Europe/Berlin"


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def ticks(expression, tz, after, n):
    found = []
    for _ in range(n):
        after = next_tick(expression, tz, after)
        found.append(after.astimezone(UTC))
    return found


# -- ticks, by computing them --------------------------------------------------------------


def test_a_daily_tick_in_the_hour_berlin_skips_runs_once_at_the_hours_end():
    # 2026-03-29: Berlin's clocks go from 02:00 to 03:00; 02:30 does not exist that day.
    assert ticks("30 2 * * *", BERLIN, utc(2026, 3, 27, 12), 3) == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),  # 03:00 CEST, the skipped hour's end: not lost
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
    ]


def test_a_daily_tick_in_the_hour_berlin_repeats_runs_once():
    # 2026-10-25: Berlin's clocks go from 03:00 back to 02:00; 02:30 happens twice.
    assert ticks("30 2 * * *", BERLIN, utc(2026, 10, 23, 12), 3) == [
        utc(2026, 10, 24, 0, 30),  # 02:30 CEST
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST, the first of the two: not doubled
        utc(2026, 10, 26, 1, 30),  # 02:30 CET
    ]


def test_an_hourly_schedule_keeps_its_pace_across_both_changes():
    spring = ticks("0 * * * *", BERLIN, utc(2026, 3, 29, 0, 30), 3)
    assert [b - a for a, b in pairwise(spring)] == [timedelta(hours=1)] * 2
    autumn = ticks("0 * * * *", BERLIN, utc(2026, 10, 24, 23, 30), 4)
    assert [b - a for a, b in pairwise(autumn)] == [timedelta(hours=1)] * 3


def test_six_fields_have_seconds_first():
    assert ticks("*/20 * * * * *", "UTC", utc(2026, 1, 1), 3) == [
        utc(2026, 1, 1, 0, 0, 20),
        utc(2026, 1, 1, 0, 0, 40),
        utc(2026, 1, 1, 0, 1, 0),
    ]


@override_settings(TIME_ZONE=BERLIN)
def test_ticks_follow_the_projects_time_zone_unless_told_otherwise():
    assert next_tick("0 9 * * *", None, utc(2026, 1, 1)) == utc(2026, 1, 1, 8)
    assert next_tick("0 9 * * *", "UTC", utc(2026, 1, 1)) == utc(2026, 1, 1, 9)


@pytest.mark.parametrize(
    ("expression", "tz", "words"),
    [
        ("61 * * * *", None, "'61 * * * *' is not valid"),
        ("* * *", None, "give 5 fields"),
        (None, None, "must be a string"),
        ("* * * * *", "Mars/Olympus", "'Mars/Olympus' is not a time zone"),
    ],
)
def test_a_bad_expression_or_zone_is_named(expression, tz, words):
    assert words in expression_problem(expression, tz)


def test_an_expression_reads_as_words():
    assert describe("0 9 * * 1-5") == "At 09:00 on Monday through Friday"


# -- schedule() and unschedule() -----------------------------------------------------------


def pending_ticks(name):
    return list(
        Execution.objects.filter(event_name=name, scheduled_at__isnull=False, status="pending")
    )


def test_schedule_keeps_the_next_tick_as_a_pending_execution(db):
    before = database_now()
    schedule("tick", "every-minute", "* * * * *", payload={"report": 7})
    stored = Schedule.objects.get(task_name="tick", name="every-minute")
    (tick,) = pending_ticks("every-minute")
    assert (stored.kind, stored.paused, stored.payload) == ("dynamic", False, {"report": 7})
    assert tick.scheduled_at == tick.run_at == stored.next_run_at
    assert before < tick.scheduled_at <= before + timedelta(minutes=1)
    assert tick.scheduled_at.second == 0
    assert (tick.task_name, tick.payload) == ("tick", {"report": 7})


def test_scheduling_again_unchanged_keeps_the_tick_and_changed_replaces_it(db):
    schedule("tick", "nightly", "0 3 * * *")
    (first,) = pending_ticks("nightly")
    schedule("tick", "nightly", "0 3 * * *")
    assert [t.pk for t in pending_ticks("nightly")] == [first.pk]
    schedule("tick", "nightly", "0 4 * * *", payload="new")
    (second,) = pending_ticks("nightly")
    assert second.pk != first.pk and not Execution.objects.filter(pk=first.pk).exists()
    assert second.payload == "new"
    assert second.scheduled_at.astimezone(UTC).minute == 0
    assert Schedule.objects.get(name="nightly").expression == "0 4 * * *"


def test_unschedule_removes_the_schedule_and_its_future_tick_only(db):
    schedule("tick", "hourly", "0 * * * *")
    schedule("tick", "other", "0 * * * *")
    assert unschedule("tick", "hourly") is True
    assert unschedule("tick", "hourly") is False
    assert pending_ticks("hourly") == []
    assert len(pending_ticks("other")) == 1
    assert list(Schedule.objects.values_list("name", flat=True)) == ["other"]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "words"),
    [
        (("tick", "bad", "0 25 * * *"), {}, ValueError, "'0 25 * * *' is not valid"),
        (("tick", "", "* * * * *"), {}, ValueError, "schedule_name must be"),
        (("tick", "tz", "* * * * *"), {"tz": "Nowhere/Land"}, ValueError, "Nowhere/Land"),
        (("tick", "json", "* * * * *", {1, 2}), {}, PayloadError, "not JSON"),
    ],
)
def test_bad_input_to_schedule_is_refused_and_stores_nothing(db, args, kwargs, error, words):
    with pytest.raises(error, match=re.escape(words)):
        schedule(*args, **kwargs)
    assert not Schedule.objects.exists() and not Execution.objects.exists()


def test_schedule_runs_in_the_callers_transaction(db):
    with pytest.raises(RuntimeError), transaction.atomic():
        schedule("tick", "rolled-back", "* * * * *")
        raise RuntimeError
    assert not Schedule.objects.exists() and not Execution.objects.exists()


# -- static schedules follow the code ------------------------------------------------------


def handler(event, ctx):
    return None


def static(*triggers):
    return Task(handler, "tick", triggers=triggers)


def sync(*tasks):
    with transaction.atomic(), connection.cursor() as cursor:
        return sync_static(cursor, tasks)


def test_static_schedules_start_change_and_go_with_the_code_and_leave_dynamic_ones(db):
    schedule("tick", "made-at-run-time", "0 0 * * *")
    assert sync(static(cron("0 9 * * *", "morning"), cron("0 18 * * *", "evening"))) == []
    (morning,) = pending_ticks("morning")
    (evening,) = pending_ticks("evening")
    assert Schedule.objects.get(name="morning").kind == "static"

    sync(static(cron("0 9 * * *", "morning"), cron("30 18 * * *", "evening")))
    assert [t.pk for t in pending_ticks("morning")] == [morning.pk]  # untouched
    (later,) = pending_ticks("evening")
    assert later.pk != evening.pk and later.scheduled_at.astimezone(UTC).minute == 30

    sync(static(cron("0 9 * * *", "morning")))
    assert pending_ticks("evening") == []
    names = set(Schedule.objects.values_list("name", flat=True))
    assert names == {"morning", "made-at-run-time"}
    assert len(pending_ticks("made-at-run-time")) == 1


def test_a_static_and_a_dynamic_schedule_never_take_each_others_name(db):
    schedule("tick", "shared", "0 0 * * *")
    (refused,) = sync(static(cron("0 9 * * *", "shared")))
    assert "made by schedule()" in refused
    assert Schedule.objects.get(name="shared").expression == "0 0 * * *"
    sync(static(cron("0 9 * * *", "in-code")))
    with pytest.raises(ValueError, match="made in code"):
        schedule("tick", "in-code", "* * * * *")
    assert unschedule("tick", "in-code") is False
    assert Schedule.objects.filter(name="in-code").exists()


# -- missed ticks --------------------------------------------------------------------------


def as_if_no_worker_ran_for(name, minutes):
    """Move a schedule's next tick, and that tick's execution, back ``minutes`` minutes."""
    shift = timedelta(minutes=minutes)
    stored = Schedule.objects.get(name=name)
    (tick,) = pending_ticks(name)
    Schedule.objects.filter(pk=stored.pk).update(next_run_at=stored.next_run_at - shift)
    Execution.objects.filter(pk=tick.pk).update(
        run_at=tick.run_at - shift, scheduled_at=tick.scheduled_at - shift
    )
    return tick.scheduled_at - shift


def test_ticks_missed_while_no_worker_ran_come_to_one_run(run_worker):
    schedule("tick", "every-minute", "* * * * *", payload="p")
    missed = as_if_no_worker_ran_for("every-minute", 3)  # three ticks passed unstarted
    run_worker()  # its first heartbeat advances the schedule, then it runs what is due
    ran = Execution.objects.filter(event_name="every-minute", status="completed")
    assert [e.scheduled_at for e in ran] == [missed]
    assert ran.get().result == missed.isoformat()
    (upcoming,) = pending_ticks("every-minute")
    now = database_now()
    assert now < upcoming.scheduled_at <= now + timedelta(minutes=1)
    assert Schedule.objects.get(name="every-minute").last_run_at == missed


def test_the_heartbeat_gives_a_tick_that_passed_unstarted_a_successor(transactional_db):
    schedule("tick", "every-minute", "* * * * *")
    missed = as_if_no_worker_ran_for("every-minute", 2)
    Execution.objects.filter(scheduled_at=missed).update(status="cancelled")
    with transaction.atomic(), connection.cursor() as cursor:
        assert advance_due(cursor, ["tick"]) == 1
        assert advance_due(cursor, ["tick"]) == 0  # advanced once, whoever asks again
    (upcoming,) = pending_ticks("every-minute")
    assert upcoming.scheduled_at > database_now()


def test_a_handler_schedules_through_ctx_as_a_step(run_worker):
    from django_conductor import invoke

    invoke("schedules-one", {"from": "handler"})
    run_worker()
    (step,) = Step.objects.filter(execution__task_name="schedules-one")
    assert step.name == "schedule 'from-a-handler' of tick" and step.error == ""
    stored = Schedule.objects.get(name="from-a-handler")
    assert (stored.kind, stored.payload) == ("dynamic", {"from": "handler"})


# -- checks --------------------------------------------------------------------------------


@pytest.fixture
def registered():
    names = []

    def register(name, **options):
        made = task(name=name, **options)(handler)
        names.append(name)
        return made

    yield register
    for name in names:
        registry.unregister(name)


def test_a_bad_cron_trigger_in_code_is_check_error_e007(registered):
    registered("bad-cron", triggers=[cron("0 25 * * *", "daily")])
    registered("twice", triggers=[cron("0 1 * * *", "same"), cron("0 2 * * *", "same")])
    registered("bad-payload", triggers=[cron("0 1 * * *", "p", payload=object())])
    errors = [e for e in checks.run_checks() if e.id == "django_conductor.E007"]
    messages = sorted(e.msg for e in errors)
    assert len(messages) == 3
    assert "'0 25 * * *' is not valid" in messages[0]
    assert "not JSON" in messages[1] or "JSON cannot hold" in messages[1]
    assert "two cron schedules are named 'same'" in messages[2]


def test_a_stored_schedule_that_no_longer_parses_is_paused_not_a_dead_heartbeat(
    transactional_db, caplog
):
    """A time zone this machine no longer knows (tzdata changed), or an expression a newer
    cronsim refuses: the heartbeat goes on, and the schedule is paused, saying why."""
    schedule("tick", "every-minute", "* * * * *")
    schedule("tick", "other", "* * * * *")
    as_if_no_worker_ran_for("every-minute", 2)
    as_if_no_worker_ran_for("other", 2)
    Schedule.objects.filter(name="every-minute").update(timezone="Atlantis/Capital")
    with transaction.atomic(), connection.cursor() as cursor:
        assert advance_due(cursor, ["tick"]) == 1  # the other one
    broken = Schedule.objects.get(name="every-minute")
    assert (broken.paused, broken.next_run_at) == (True, None)
    assert "Atlantis/Capital" in caplog.text and "paused" in caplog.text
    assert len(pending_ticks("other")) == 2  # its missed tick, and the next
    with pytest.raises(ValueError, match="Atlantis/Capital"):
        resume(broken.pk)
    assert Schedule.objects.get(pk=broken.pk).paused
