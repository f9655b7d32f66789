"""Cron schedules with real worker processes: two workers across real tick boundaries run
each tick once, and a static schedule follows the code from one worker start to the next."""

import json
import signal
from datetime import timedelta
from itertools import pairwise

import pytest

from django_conductor import schedule
from django_conductor.models import Execution, Schedule
from django_conductor.triggers.cron import zone
from tests.testapp.models import SideEffect

from .conftest import wait_until

pytestmark = pytest.mark.slow


def completed_ticks(name):
    return Execution.objects.filter(event_name=name, status="completed").order_by("scheduled_at")


def test_two_workers_across_real_tick_boundaries_run_each_tick_once(worker_process):
    schedule("tick", "every-2s", "*/2 * * * * *", payload={"n": 1})
    workers = [worker_process("--concurrency", "2", "--worker-id", f"w{i}") for i in (1, 2)]
    wait_until(lambda: completed_ticks("every-2s").count() >= 4, timeout=60)
    for proc in workers:
        proc.signal(signal.SIGTERM)
    assert [proc.wait(timeout=60) for proc in workers] == [0, 0]

    ran = list(completed_ticks("every-2s"))
    recorded = [
        json.loads(v)
        for v in SideEffect.objects.filter(kind="tick").values_list("value", flat=True)
    ]
    ticks = [e.scheduled_at for e in ran]
    assert len(set(ticks)) == len(ticks) >= 4
    # Each tick's handler ran once, with the schedule's name, tick and payload.
    assert sorted(r[1] for r in recorded) == sorted(t.isoformat() for t in ticks)
    assert {(r[0], json.dumps(r[2])) for r in recorded} == {("every-2s", '{"n": 1}')}
    assert all(t.second % 2 == 0 and t.microsecond == 0 for t in ticks)
    assert all(b - a >= timedelta(seconds=2) for a, b in pairwise(ticks))
    assert {e.attempts for e in ran} == {1}
    assert not Execution.objects.filter(event_name="every-2s", status="failed").exists()
    # The next tick waits as a pending execution, created when the last one started.
    upcoming = Execution.objects.get(event_name="every-2s", status="pending")
    assert upcoming.scheduled_at > ticks[-1]


def test_a_static_schedule_follows_the_code_from_one_start_to_the_next(worker_process):
    def start_with(expression):
        env = {"CONDUCTOR_TEST_STATIC_CRON": expression} if expression else {}
        proc = worker_process("--burst", env=env)
        assert proc.wait(timeout=60) == 0, proc.output
        return proc

    start_with("0 0 1 1 *")  # each New Year's midnight
    stored = Schedule.objects.get(task_name="static-tick")
    first = Execution.objects.get(task_name="static-tick", status="pending")
    assert (stored.name, stored.kind, stored.payload) == ("from-code", "static", {"static": True})
    assert first.scheduled_at == stored.next_run_at and first.payload == {"static": True}

    start_with("0 0 1 1 *")  # unchanged: the same future tick
    assert Execution.objects.get(task_name="static-tick", status="pending").pk == first.pk

    start_with("0 0 2 1 *")  # changed: the stale tick goes, the new one comes
    second = Execution.objects.get(task_name="static-tick", status="pending")
    assert second.pk != first.pk
    local = second.scheduled_at.astimezone(zone(None))
    assert (local.month, local.day, local.hour, local.minute) == (1, 2, 0, 0)
    assert not Execution.objects.filter(pk=first.pk).exists()

    start_with(None)  # removed from the code
    assert not Schedule.objects.filter(task_name="static-tick").exists()
    assert not Execution.objects.filter(task_name="static-tick").exists()


def test_a_tick_whose_worker_is_killed_runs_once_more_and_keeps_its_next_tick(worker_process):
    short_lease = {"CONDUCTOR_TEST_LEASE": "2", "CONDUCTOR_TEST_HEARTBEAT_INTERVAL": "0.5"}
    payload = {"key": "tick", "first": 30, "then": 0.2}
    schedule("slow-first-run", "new-year", "0 0 1 1 *", payload=payload)
    stored = Schedule.objects.get(name="new-year")
    (tick,) = Execution.objects.filter(event_name="new-year")
    # Its time has come: the tick and the schedule a year back.
    year = timedelta(days=366)
    Schedule.objects.filter(pk=stored.pk).update(next_run_at=stored.next_run_at - year)
    Execution.objects.filter(pk=tick.pk).update(
        run_at=tick.run_at - year, scheduled_at=tick.scheduled_at - year
    )
    worker_a = worker_process("--worker-id", "worker-a", env=short_lease)
    wait_until(lambda: SideEffect.objects.filter(kind="started", value="tick").exists(), 60)
    worker_a.signal(signal.SIGKILL)
    assert worker_a.wait() == -signal.SIGKILL
    # The next tick is on record already (the worker's first heartbeat or the tick's start made it).
    upcoming = Execution.objects.get(event_name="new-year", status="pending")
    assert upcoming.scheduled_at == Schedule.objects.get(pk=stored.pk).next_run_at

    worker_b = worker_process("--worker-id", "worker-b", env=short_lease)
    wait_until(lambda: Execution.objects.get(pk=tick.pk).status == "completed", 60)
    worker_b.signal(signal.SIGTERM)
    assert worker_b.wait(timeout=60) == 0, worker_b.output
    ran = Execution.objects.get(pk=tick.pk)
    assert (ran.attempts, ran.claims) == (2, 2)
    assert SideEffect.objects.filter(kind="finished", value="tick").count() == 1
    ticks = Execution.objects.filter(event_name="new-year").order_by("scheduled_at")
    assert [t.pk for t in ticks] == [tick.pk, upcoming.pk]  # no tick twice, none lost
