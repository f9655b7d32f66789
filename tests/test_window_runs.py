"""Windows enforced by workers on real PostgreSQL: outside its window an execution parks
until the next opening without using an attempt (real worker processes in a non-UTC zone,
across midnight); a running one parks at its next step once the window closes; a cron tick
waits for the window in place of the ticks until then. No test waits for the clock: each
chooses the zone (``TIME_ZONE``) in which the database's now is inside or outside."""

import signal
import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.test import override_settings

from django_conductor import invoke, run_now, schedule
from django_conductor.models import Execution, Schedule, Step
from django_conductor.worker import Worker
from tests.conftest import database_now, effects, fast_forward, wait_until
from tests.test_cron import as_if_no_worker_ran_for, pending_ticks
from tests.testapp.models import SideEffect

#: Zones a whole or half hour apart around the world, in summer and in winter: some local
#: hour of any stretch of four hours is always among them.
ZONES = [
    "Pacific/Pago_Pago",
    "Pacific/Honolulu",
    "Pacific/Gambier",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Halifax",
    "America/Sao_Paulo",
    "America/Noronha",
    "Atlantic/Cape_Verde",
    "Atlantic/Azores",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Athens",
    "Europe/Moscow",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Kolkata",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Asia/Vladivostok",
    "Pacific/Noumea",
    "Asia/Kamchatka",
    "Pacific/Auckland",
    "Pacific/Kiritimati",
]


def zone_where_it_is(low, high):
    """A zone whose local hour on the database's clock is in [low, high), and that time."""
    now = database_now()
    for name in ZONES:
        local = now.astimezone(ZoneInfo(name))
        if low <= local.hour < high:
            return name, local
    raise AssertionError(f"no zone has a local hour in [{low}, {high}) at {now}")


def at(local, hh_mm, *, days=0):
    """``hh_mm`` on ``local``'s date (plus ``days``), in its zone."""
    wall = datetime.combine(
        local.date() + timedelta(days=days), datetime.strptime(hh_mm, "%H:%M").time()
    )
    return wall.replace(tzinfo=local.tzinfo)


def test_outside_its_window_an_execution_waits_for_the_opening_without_an_attempt(
    worker_process,
):
    zone, local = zone_where_it_is(8, 14)
    closed_a_minute_ago = f"{local - timedelta(minutes=1):%H:%M}"
    window = f"22:00-{closed_a_minute_ago}"  # across midnight, shut since a minute ago
    handle = invoke("windowed", {"n": 1})
    env = {"CONDUCTOR_TEST_TIME_ZONE": zone, "CONDUCTOR_TEST_WINDOW": window}
    worker = worker_process("--concurrency", "1", env=env)

    def parked():
        execution = Execution.objects.get(pk=handle.id)
        return execution.claims == 1 and execution.status == "pending"

    wait_until(parked, timeout=60)
    execution = Execution.objects.get(pk=handle.id)
    assert execution.run_at == at(local, "22:00"), worker.output_so_far()
    assert (execution.attempts, execution.lease_owner) == (0, None)
    assert effects("windowed-ran") == []
    time.sleep(3)  # three poll intervals: a spinning worker would claim it again
    assert Execution.objects.get(pk=handle.id).claims == 1
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.output
    assert effects("windowed-ran") == []


def test_inside_its_window_an_execution_runs_its_steps_sleeps_and_children(worker_process):
    zone, local = zone_where_it_is(8, 14)
    window = f"22:00-{local + timedelta(hours=2):%H:%M}"  # across midnight, open for 2 h
    plain = invoke("windowed", {"n": 2})
    workflow = invoke("windowed-workflow", {})
    env = {"CONDUCTOR_TEST_TIME_ZONE": zone, "CONDUCTOR_TEST_WINDOW": window}
    worker = worker_process("--concurrency", "2", env=env)
    assert plain.wait(timeout=60) == "ran"
    assert workflow.wait(timeout=60) == ["stepped", {"from": "windowed"}]
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.output
    assert Execution.objects.get(pk=plain.id).attempts == 1
    finished = Execution.objects.get(pk=workflow.id)
    assert finished.attempts == 1 and finished.claims >= 3  # ran, woke, had its child back


def test_a_running_execution_parks_at_its_next_step_once_the_window_closes(transactional_db):
    # The test tasks' window is 22:00-06:00. Open: a zone where it is between 00:00 and
    # 04:00. Closed: one where it is between 10:00 and 16:00, opening at 22:00 there.
    open_zone, _ = zone_where_it_is(0, 4)
    closed_zone, closed_local = zone_where_it_is(10, 16)
    with override_settings(TIME_ZONE=open_zone):
        handle = invoke("windowed-two-steps", {})
        worker = Worker(install_signal_handlers=False, concurrency=1)
        thread = threading.Thread(target=worker.run)
        thread.start()
        try:
            wait_until(lambda: effects("first-step") == [""], timeout=60)
            with override_settings(TIME_ZONE=closed_zone):
                SideEffect.objects.create(kind="go")  # the first step ends; the window has shut

                def parked():
                    execution = Execution.objects.get(pk=handle.id)
                    return execution.status == "pending" and execution.lease_owner is None

                wait_until(parked, timeout=60)
        finally:
            worker.stop()
            thread.join(30)
    execution = Execution.objects.get(pk=handle.id)
    assert execution.run_at == at(closed_local, "22:00")
    assert (execution.attempts, execution.claims) == (0, 1)
    assert list(Step.objects.filter(execution=execution).values_list("name", flat=True)) == [
        "first"
    ]
    assert effects("second-step") == []

    with override_settings(TIME_ZONE=open_zone):  # the window opens again
        assert run_now(handle.id)
        Worker(install_signal_handlers=False, burst=True, concurrency=1).run()
    assert handle.wait(1) == 3
    assert (effects("first-step"), effects("second-step")) == ([""], [""])  # no step twice
    assert Execution.objects.get(pk=handle.id).attempts == 1


def test_a_cron_tick_of_a_windowed_task_waits_for_the_window_in_place_of_the_ticks_until_then(
    run_worker,
):
    closed_zone, closed_local = zone_where_it_is(10, 16)
    open_zone, _ = zone_where_it_is(0, 4)
    opening = at(closed_local, "22:00")
    with override_settings(TIME_ZONE=closed_zone):
        schedule("windowed", "every-minute", "* * * * *", payload="tick")
        missed = as_if_no_worker_ran_for("every-minute", 3)
        run_worker()  # its heartbeat makes the next tick; the missed one parks
    waiting = Execution.objects.get(event_name="every-minute", scheduled_at=missed)
    assert (waiting.status, waiting.attempts, waiting.claims) == ("pending", 0, 1)
    assert waiting.run_at == opening
    # Ticks until the opening would wait for it too: the waiting one stands for them.
    after_the_opening = opening + timedelta(minutes=1)
    assert sorted(t.scheduled_at for t in pending_ticks("every-minute")) == [
        missed,
        after_the_opening,
    ]
    assert Schedule.objects.get(name="every-minute").next_run_at == after_the_opening
    assert effects("windowed-ran") == []

    with override_settings(TIME_ZONE=open_zone):  # as if it were the opening
        fast_forward(waiting.pk)
        run_worker()
    waiting.refresh_from_db()
    assert (waiting.status, waiting.attempts) == ("completed", 1)
    assert effects("windowed-ran") == ["tick"]
    assert [t.scheduled_at for t in pending_ticks("every-minute")] == [after_the_opening]
