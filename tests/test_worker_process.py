"""Real ``conductor_worker`` processes on the test database: several workers share the work
exactly once, SIGTERM drains within the grace period and hands back the rest, SIGKILL loses
nothing once the lease expires (DESIGN.md: crash safety, exactly one runner)."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection

from django_conductor import invoke
from django_conductor.models import Execution, Step, WorkerHeartbeat
from django_conductor.worker.connections import IDLE_BEFORE_POLL
from tests.testapp.models import SideEffect
from tests.testapp.process_tasks import record_in_step

from .conftest import ROOT, wait_until

pytestmark = pytest.mark.slow

#: A lease short enough to wait out in a test; the heartbeat stays at most half of it.
SHORT_LEASE = {"CONDUCTOR_TEST_LEASE": "2", "CONDUCTOR_TEST_HEARTBEAT_INTERVAL": "0.5"}
#: A shutdown grace several leases long.
LONG_GRACE = {"CONDUCTOR_TEST_SHUTDOWN_GRACE": "30"}


def finish(proc, timeout=30):
    """Wait for a worker process; return its exit code and how long the wait took."""
    started = time.monotonic()
    code = proc.wait(timeout=timeout)
    return code, time.monotonic() - started


def side_effects(kind, value):
    return SideEffect.objects.filter(kind=kind, value=value).count()


def lease_expired(execution_id):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT lease_expires_at < now() FROM django_conductor_execution WHERE id = %s",
            [execution_id],
        )
        return cursor.fetchone()[0]


def test_two_worker_processes_run_500_executions_exactly_once(worker_process):
    handles = record_in_step.invoke_many({"n": n, "sleep": 0.005} for n in range(500))
    ids = {handle.id for handle in handles}

    workers = [
        worker_process("--burst", "--concurrency", "4", "--worker-id", name)
        for name in ("worker-a", "worker-b")
    ]
    codes = [proc.wait(timeout=60) for proc in workers]

    output = "\n\n".join(proc.output for proc in workers)
    assert codes == [0, 0], output
    executions = Execution.objects.filter(pk__in=ids)
    assert Counter(executions.values_list("status", flat=True)) == {"completed": 500}, output
    # Claimed once, run once: no execution was ever picked up by both workers.
    assert set(executions.values_list("claims", "attempts")) == {(1, 1)}
    assert sorted(executions.values_list("result", flat=True)) == list(range(500))
    values = list(SideEffect.objects.values_list("value", flat=True))
    assert len(values) == 500
    assert set(values) == {str(n) for n in range(500)}
    assert Step.objects.filter(execution__in=ids, name="record").count() == 500
    # Each run recorded the pid of the process that ran it: both workers took a share.
    by_worker = Counter(SideEffect.objects.values_list("kind", flat=True))
    assert set(by_worker) == {f"pid:{proc.process.pid}" for proc in workers}, (by_worker, output)
    assert not WorkerHeartbeat.objects.exists()


def test_sigterm_lets_running_execution_finish_within_grace(worker_process):
    handle = invoke("slow", 1.5)
    proc = worker_process("--concurrency", "2", env={"CONDUCTOR_TEST_SHUTDOWN_GRACE": "60"})
    wait_until(lambda: side_effects("started", "1.5") == 1)

    proc.signal(signal.SIGTERM)
    code, took = finish(proc, timeout=90)

    assert code == 0, proc.output
    assert took < 30, proc.output  # it exits once the execution is done, not after the grace
    execution = Execution.objects.get(pk=handle.id)
    assert execution.status == "completed", proc.output
    assert execution.result == "slept"
    assert (execution.attempts, execution.claims) == (1, 1)
    assert execution.lease_owner is None
    assert side_effects("finished", "1.5") == 1
    assert "Got SIGTERM: finishing running executions" in proc.output
    assert "Handed back" not in proc.output
    assert not WorkerHeartbeat.objects.exists()


def test_sigterm_hands_back_what_outlives_the_grace(worker_process):
    handle = invoke("slow-first-run", {"key": "k", "first": 60, "then": 0.1})
    grace = {"CONDUCTOR_TEST_SHUTDOWN_GRACE": "1"}
    proc = worker_process("--concurrency", "2", "--worker-id", "worker-a", env=grace)
    wait_until(lambda: side_effects("started", "k") == 1)

    proc.signal(signal.SIGTERM)
    code, took = finish(proc)

    assert code == 0, proc.output
    assert took < 20, proc.output  # the 1 s grace, not the 60 s task
    execution = Execution.objects.get(pk=handle.id)
    assert execution.status == "pending", proc.output
    assert execution.attempts == 0  # handed back: the attempt is not used up
    assert execution.claims == 1
    assert execution.lease_owner is None
    assert execution.lease_expires_at is None
    assert side_effects("finished", "k") == 0
    assert "Handed back 1 running executions" in proc.output
    assert not WorkerHeartbeat.objects.exists()

    again = worker_process("--burst", "--worker-id", "worker-b")
    assert again.wait() == 0, again.output
    execution.refresh_from_db()
    assert execution.status == "completed", again.output
    assert execution.result == 2  # the second run
    assert (execution.attempts, execution.claims) == (1, 2)
    assert side_effects("started", "k") == 2
    assert side_effects("finished", "k") == 1  # the handed-back run never finished


def test_second_signal_exits_now_and_hands_back(worker_process):
    handle = invoke("slow-first-run", {"key": "k", "first": 60, "then": 0.1})
    proc = worker_process("--concurrency", "2")  # the default 30 s grace
    wait_until(lambda: side_effects("started", "k") == 1)

    proc.signal(signal.SIGTERM)
    time.sleep(0.3)  # two signals sent at once may arrive as one
    proc.signal(signal.SIGTERM)
    code, took = finish(proc)

    assert code == 0, proc.output
    assert took < 20, proc.output  # neither the 30 s grace nor the 60 s task
    assert "Got SIGTERM: finishing running executions" in proc.output
    assert "Got SIGTERM again: handing everything back and exiting now" in proc.output
    execution = Execution.objects.get(pk=handle.id)
    assert execution.status == "pending", proc.output
    assert (execution.attempts, execution.claims) == (0, 1)
    assert execution.lease_owner is None
    assert not Execution.objects.filter(status="running").exists()
    assert side_effects("finished", "k") == 0
    assert not WorkerHeartbeat.objects.exists()

    again = worker_process("--burst")
    assert again.wait() == 0, again.output
    execution.refresh_from_db()
    assert execution.status == "completed", again.output
    assert (execution.attempts, execution.claims) == (1, 2)


def test_sigkill_mid_task_second_worker_takes_over_after_lease_expiry(worker_process):
    handle = invoke("slow-first-run", {"key": "k", "first": 30, "then": 0.2})
    worker_a = worker_process("--worker-id", "worker-a", env=SHORT_LEASE)
    wait_until(lambda: side_effects("started", "k") == 1)

    worker_a.signal(signal.SIGKILL)
    assert worker_a.wait() == -signal.SIGKILL, worker_a.output
    execution = Execution.objects.get(pk=handle.id)
    assert execution.status == "running"
    assert execution.lease_owner == "worker-a"
    assert (execution.attempts, execution.claims) == (1, 1)
    expires_at = execution.lease_expires_at

    # Worker B starts at once; it may take the execution over only once A's lease expired.
    worker_b = worker_process("--worker-id", "worker-b", env=SHORT_LEASE)
    wait_until(lambda: Execution.objects.get(pk=handle.id).status == "completed")
    worker_b.signal(signal.SIGTERM)
    code = worker_b.wait()

    assert code == 0, worker_b.output
    execution.refresh_from_db()
    assert execution.result == 2, worker_b.output
    assert execution.attempts == 2  # the attempt lost with worker A counts
    assert execution.claims == 2
    assert execution.lease_owner is None
    second_start = SideEffect.objects.filter(kind="started", value="k").latest("pk")
    assert second_start.created_at > expires_at
    assert side_effects("started", "k") == 2
    assert side_effects("finished", "k") == 1
    assert "stopped renewing its lease" in worker_b.output
    assert not WorkerHeartbeat.objects.filter(worker_id="worker-b").exists()


def test_sigkill_loses_nothing_of_many(worker_process):
    handles = record_in_step.invoke_many({"n": n, "sleep": 0.1} for n in range(50))
    ids = [handle.id for handle in handles]
    worker_a = worker_process("--concurrency", "4", "--worker-id", "worker-a", env=SHORT_LEASE)
    wait_until(lambda: Execution.objects.filter(status="completed").count() >= 10)

    worker_a.signal(signal.SIGKILL)
    assert worker_a.wait() == -signal.SIGKILL, worker_a.output
    lost = set(
        Execution.objects.filter(status="running", lease_owner="worker-a").values_list(
            "pk", flat=True
        )
    )
    assert lost, "worker A was killed while nothing ran; the test proves nothing"
    held_ahead = set(
        Execution.objects.filter(pk__in=lost, prefetched=True).values_list("pk", flat=True)
    )
    assert Execution.objects.filter(status="pending").exists()
    recorded_by_a = set(
        Step.objects.filter(name="record", finished_at__isnull=False).values_list(
            "execution_id", flat=True
        )
    )
    wait_until(lambda: all(lease_expired(pk) for pk in lost))

    worker_b = worker_process("--burst", "--concurrency", "4", "--worker-id", "worker-b")
    assert worker_b.wait() == 0, worker_b.output

    executions = {e.pk: e for e in Execution.objects.filter(pk__in=ids)}
    assert Counter(e.status for e in executions.values()) == {"completed": 50}, worker_b.output
    assert sorted(e.result for e in executions.values()) == list(range(50))
    runs = Counter(SideEffect.objects.values_list("value", flat=True))
    assert set(runs) == {str(n) for n in range(50)}
    uncounted = {pk for pk in lost if pk in held_ahead}
    for execution in executions.values():
        n = execution.payload["n"]
        # A claim held ahead of a thread, or running uncounted then, is not counted when lost.
        assert execution.attempts == execution.claims - (execution.pk in uncounted), n
        # At least once; again only after a crash; never again once its step committed.
        assert 1 <= runs[str(n)] <= execution.claims, n
        if execution.pk in recorded_by_a:
            assert runs[str(n)] == 1, n
        if execution.pk in lost:
            assert execution.claims == 2, n
    assert {e.claims for e in executions.values() if e.pk not in lost} == {1}


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "must be at least 1, not 0"), ("x", "'x' is not a whole number")],
)
def test_bad_concurrency_is_an_argparse_error_and_nothing_runs(transactional_db, value, message):
    handle = invoke("record", "untouched")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CONDUCTOR_DATABASE_NAME": connection.settings_dict["NAME"],
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "django", "conductor_worker", "--concurrency", value]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)

    assert result.returncode == 2, result.stdout + result.stderr
    assert f"argument --concurrency/-c: {message}" in result.stderr
    assert "conductor_worker" in result.stderr  # argparse's usage line
    assert Execution.objects.get(pk=handle.id).status == "pending"
    assert not SideEffect.objects.exists()
    assert not WorkerHeartbeat.objects.exists()


#: Worker processes started with this application name are the ones a "restart" hits.
RESTART_APP = {"PGAPPNAME": "conductor-restart-test"}


def restart_database_for_worker():
    """What a database restart does to a worker, without touching the server: for a second,
    every connection the worker holds or opens is terminated. Returns the database time
    at the end."""
    deadline = time.monotonic() + 1.0
    terminated = 0
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                [RESTART_APP["PGAPPNAME"]],
            )
            terminated += cursor.fetchone()[0]
            time.sleep(0.05)
        cursor.execute("SELECT now()")
        return terminated, cursor.fetchone()[0]


def test_worker_survives_database_restart(worker_process):
    first = invoke("process-record-retry-now", {"n": 1})
    proc = worker_process("--concurrency", "1", "--worker-id", "worker-a", env=RESTART_APP)
    wait_until(lambda: Execution.objects.get(pk=first.id).status == "completed")

    terminated, restarted_at = restart_database_for_worker()

    assert terminated >= 2  # at least the worker's own connection and its listener's
    if proc.process.poll() is not None:
        proc.wait()
        raise AssertionError(f"the worker died with its connections:\n{proc.output}")
    second = invoke("process-record-retry-now", {"n": 2})
    wait_until(lambda: Execution.objects.get(pk=second.id).status == "completed")
    # The heartbeat thread came back too, so the worker keeps its leases.
    wait_until(
        lambda: WorkerHeartbeat.objects.filter(
            worker_id="worker-a", last_seen_at__gt=restarted_at
        ).exists()
    )
    proc.signal(signal.SIGTERM)
    # No "Database unavailable" needed: idle connections the server closed are reopened
    # before they are used, so the worker may never see an error at all.
    assert proc.wait() == 0, proc.output
    assert Execution.objects.get(pk=second.id).result == 2
    assert sorted(SideEffect.objects.values_list("value", flat=True)) == ["1", "2"]


def test_database_restart_uses_up_no_attempt(worker_process):
    first = invoke("process-record-retry-now", {"n": 1})
    proc = worker_process("--concurrency", "1", "--worker-id", "worker-a", env=RESTART_APP)
    wait_until(lambda: Execution.objects.get(pk=first.id).status == "completed")
    restart_database_for_worker()

    second = invoke("process-record-retry-now", {"n": 2})
    wait_until(lambda: Execution.objects.get(pk=second.id).status == "completed")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0, proc.output

    execution = Execution.objects.get(pk=second.id)
    assert execution.attempts == 1, (execution.error, proc.output)


def test_a_worker_logs_the_tasks_it_serves(worker_process):
    proc = worker_process("--burst")
    code, _ = finish(proc)
    assert code == 0, proc.output
    (tasks,) = [line for line in proc.output.splitlines() if "Tasks: " in line]
    assert "echo [default]" in tasks
    assert "No tasks are registered" not in proc.output


def test_a_worker_with_no_tasks_warns_naming_where_it_looked(worker_process):
    proc = worker_process("--burst", env={"DJANGO_SETTINGS_MODULE": "tests.settings_without_tasks"})
    code, _ = finish(proc)
    assert code == 0, proc.output
    (warning,) = [line for line in proc.output.splitlines() if "No tasks are registered" in line]
    assert "WARNING" in warning
    assert "imported the 'tasks' module of every installed app (django_conductor)" in warning


@pytest.fixture
def unmigrated_database(transactional_db):
    """An empty database on the test server, as a project has before ``migrate``."""
    name = f"conductor_unmigrated_{os.getpid()}"
    with connection._nodb_cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    yield name
    with connection._nodb_cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_worker_before_migrate_says_to_run_migrate_in_one_line(
    worker_process, unmigrated_database
):
    proc = worker_process("--burst", env={"CONDUCTOR_DATABASE_NAME": unmigrated_database})
    code, _ = finish(proc)
    assert code == 1, proc.output
    assert "Traceback" not in proc.output
    assert proc.output.strip().splitlines() == [
        f"CommandError: django_conductor's tables do not exist in database "
        f"'{unmigrated_database}' (django_conductor_execution, django_conductor_step, "
        "django_conductor_failedexecution, django_conductor_workerheartbeat, "
        "django_conductor_schedule, django_conductor_concurrencylimit): run `python manage.py "
        "migrate`."
    ]


def test_an_attempt_after_the_database_dropped_its_connections_starts_on_a_fresh_one(
    worker_process,
):
    worker = worker_process("--concurrency", "1")
    warm = invoke("record", "warm")
    assert warm.wait(timeout=60) == "warm"  # the slot thread's connection is open now
    time.sleep(IDLE_BEFORE_POLL + 0.5)  # and idle long enough to be polled before reuse
    with connection.cursor() as cursor:  # as a server restart would: every session is cut
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    handle = invoke("orm-in-step", {})
    assert handle.wait(timeout=60) == 0
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.attempts, execution.claims) == (1, 1), worker.process.pid


def test_executions_finishing_within_a_grace_longer_than_the_lease_keep_their_lease(
    worker_process,
):
    handle = invoke("slow-first-run", {"key": "graceful", "first": 6, "then": 0.1})
    stopping = worker_process("--concurrency", "1", env={**SHORT_LEASE, **LONG_GRACE})
    wait_until(lambda: side_effects("started", "graceful") == 1)
    other = worker_process("--concurrency", "1", env=SHORT_LEASE)  # reaps expired leases
    stopping.signal(signal.SIGTERM)
    code, _ = finish(stopping, timeout=60)
    assert code == 0, stopping.output
    execution = Execution.objects.get(pk=handle.id)
    assert execution.status == "completed", stopping.output
    assert (execution.attempts, execution.claims) == (1, 1)  # never taken over
    assert side_effects("started", "graceful") == 1
    other.signal(signal.SIGTERM)
    assert other.wait(30) == 0, other.output


def test_a_worker_frozen_past_its_lease_starts_no_step_when_it_wakes(worker_process):
    handle = invoke("gaps-between-steps", {})
    frozen = worker_process("--concurrency", "1", env=SHORT_LEASE)
    wait_until(lambda: SideEffect.objects.filter(kind="gap-step").count() >= 3)
    frozen.signal(signal.SIGSTOP)
    try:
        other = worker_process("--concurrency", "1", env=SHORT_LEASE)
        wait_until(lambda: Execution.objects.get(pk=handle.id).status == "completed", 60)
        last_before_waking = SideEffect.objects.latest("id").id
    finally:
        frozen.signal(signal.SIGCONT)
    after_waking = SideEffect.objects.filter(
        kind="gap-step", id__gt=last_before_waking, value__endswith=f":{frozen.process.pid}"
    )
    # Woken, it either notices that its lease ran out, or (the bug) runs the next step.
    wait_until(lambda: "lease ran out" in frozen.output_so_far() or after_waking.exists(), 30)
    frozen.signal(signal.SIGTERM)
    assert frozen.wait(30) == 0, frozen.output
    assert not after_waking.exists(), frozen.output
    runs = Counter(v.split(":")[0] for v in gap_steps())
    assert sorted(runs, key=int) == [str(n) for n in range(1, 21)]
    assert sum(runs.values()) <= 21  # at most the one step in flight when it froze
    other.signal(signal.SIGTERM)
    assert other.wait(30) == 0, other.output


def gap_steps():
    return SideEffect.objects.filter(kind="gap-step").values_list("value", flat=True)


def test_a_worker_started_while_the_database_is_down_waits_for_it(worker_process):
    waiting = worker_process(env={"CONDUCTOR_DATABASE_NAME": "conductor_not_created_yet"})
    wait_until(lambda: "Database unavailable" in waiting.output_so_far(), 30)
    assert waiting.process.poll() is None  # still waiting, not exited
    waiting.signal(signal.SIGTERM)
    assert waiting.wait(30) == 0, waiting.output


def test_a_duty_thread_that_dies_stops_the_worker_loudly(worker_process):
    worker = worker_process("--worker-id", "loud", env=SHORT_LEASE)
    wait_until(lambda: WorkerHeartbeat.objects.filter(worker_id="loud").exists())
    rename = "ALTER TABLE django_conductor_workerheartbeat RENAME COLUMN {} TO {}"
    with connection.cursor() as cursor:  # the next heartbeat fails, and not for a lost link
        cursor.execute(rename.format("host", "host_renamed"))
    try:
        code = worker.wait(60)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(rename.format("host_renamed", "host"))
    assert code == 1, worker.output
    assert "The worker's _heartbeat died; stopping the worker" in worker.output
    assert "CommandError: Worker loud stopped:" in worker.output


FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


@pytest.mark.skipif(not FAKETIME.exists(), reason="needs Debian's faketime (.ci/run installs it)")
def test_a_worker_whose_clock_is_behind_the_database_sleeps_without_spinning(worker_process):
    handle = invoke("one-second-sleep", {})
    behind = {"LD_PRELOAD": str(FAKETIME), "FAKETIME": "-3", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    worker = worker_process("--concurrency", "1", env=behind)  # its clock is 3 s behind
    assert handle.wait(timeout=60) == "rested"
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.output
    assert Execution.objects.get(pk=handle.id).claims == 2  # the run, and the wake-up


def test_a_killed_worker_uses_no_attempt_of_the_executions_it_held_ahead(worker_process):
    for n in range(4):
        invoke("slow-first-run", {"key": f"k{n}", "first": 60, "then": 0})
    Execution.objects.update(max_attempts=1)
    worker_a = worker_process("--concurrency", "1", "--worker-id", "worker-a", env=SHORT_LEASE)
    wait_until(lambda: SideEffect.objects.filter(kind="started").count() == 1)
    wait_until(lambda: Execution.objects.filter(prefetched=True).exists())
    worker_a.signal(signal.SIGKILL)
    assert worker_a.wait() == -signal.SIGKILL, worker_a.output
    (ran,) = SideEffect.objects.filter(kind="started").values_list("value", flat=True)
    held_ahead = list(Execution.objects.filter(prefetched=True).exclude(payload__key=ran))
    assert held_ahead, "nothing was held ahead when the worker was killed"
    assert {(e.status, e.attempts, e.claims) for e in held_ahead} == {("running", 0, 1)}
    wait_until(lambda: all(lease_expired(e.pk) for e in held_ahead))
    for execution in Execution.objects.exclude(payload__key=ran):  # quick from now on
        Execution.objects.filter(pk=execution.pk).update(payload={**execution.payload, "first": 0})

    worker_b = worker_process("--burst", "--worker-id", "worker-b")
    assert worker_b.wait() == 0, worker_b.output
    for execution in held_ahead:
        execution.refresh_from_db()
        assert (execution.status, execution.attempts) == ("completed", 1), worker_b.output
    # The one that was running when its worker died used its only attempt.
    killed_in = Execution.objects.get(payload__key=ran)
    assert (killed_in.status, killed_in.attempts) == ("failed", 1)


def test_an_execution_whose_handler_kills_its_worker_runs_out_of_attempts(worker_process):
    """Each time it is held ahead of a busy thread; only one attempt goes uncounted."""
    handle = invoke("kills-its-worker")
    for round_ in range(1, 8):
        invoke("slow-first-run", {"key": f"busy-{round_}", "first": 0.5, "then": 0}, priority=1)
        worker = worker_process("--burst", "--concurrency", "1", env=SHORT_LEASE)
        assert worker.wait() in (0, -signal.SIGKILL), worker.output
        if Execution.objects.get(pk=handle.id).status == "failed":
            break
        wait_until(lambda: lease_expired(handle.id))
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.attempts) == ("failed", 3), worker.output
    assert side_effects("started", "kills-its-worker") == 4
