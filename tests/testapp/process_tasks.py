"""Tasks for the real-process worker tests (tests/test_worker_process.py)."""

import os
import time

from django_conductor import task

from .models import SideEffect

__all__ = ["record_in_step", "record_in_step_retry_now", "slow_first_run"]


def _record_run(value: str) -> None:
    # The kind names the worker process, so a test can tell which worker did the work.
    SideEffect.objects.create(kind=f"pid:{os.getpid()}", value=value)


@task(name="process-record")
def record_in_step(event, ctx):
    """Record one SideEffect in a step, then linger ``sleep`` seconds before completing."""
    n = event.payload["n"]
    ctx.step("record", _record_run, str(n))
    time.sleep(event.payload.get("sleep", 0))
    return n


@task(name="process-record-retry-now", max_attempts=5, retry_delays=[0])
def record_in_step_retry_now(event, ctx):
    """The same, retried at once after a failed attempt."""
    return record_in_step.func(event, ctx)


@task(name="slow-first-run")
def slow_first_run(event, ctx):
    """Sleep ``first`` seconds on the first run of ``key`` and ``then`` seconds on any later
    run, recording "started" and "finished" SideEffects (value: key) around the sleep."""
    key = event.payload["key"]
    earlier = SideEffect.objects.filter(kind="started", value=key).count()
    SideEffect.objects.create(kind="started", value=key)
    time.sleep(event.payload["first"] if earlier == 0 else event.payload["then"])
    SideEffect.objects.create(kind="finished", value=key)
    return earlier + 1


@task(name="orm-in-step")
def orm_in_step(event, ctx):
    """A step whose first act is a query on the worker thread's own connection."""
    return ctx.step("count", lambda: SideEffect.objects.filter(kind="never").count())


@task(name="gaps-between-steps")
def gaps_between_steps(event, ctx):
    """Twenty quick steps with work between them: a worker frozen now is between steps."""
    for n in range(1, 21):
        ctx.step(f"step-{n}", _record_gap_step, n)
        time.sleep(0.2)
    return "done"


def _record_gap_step(n: int) -> int:
    SideEffect.objects.create(kind="gap-step", value=f"{n}:{os.getpid()}")
    return n


@task(name="one-second-sleep")
def one_second_sleep(event, ctx):
    ctx.sleep("nap", 1)
    return "rested"


@task(name="step-after-a-dropped-connection", max_attempts=1)
def step_after_a_dropped_connection(event, ctx):
    """The server drops this thread's connection; the handler shrugs off the failed query
    and carries on with a step, which the worker records on a connection of its own."""
    import psycopg
    from django.db import DatabaseError, connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        pass  # the connection is gone: libpq now knows it is broken
    return ctx.step("after", lambda: "recorded")


@task(name="kills-its-worker", max_attempts=3)
def kills_its_worker(event, ctx):
    """A handler that takes its worker down with it, as a crash in native code would."""
    import signal

    SideEffect.objects.create(kind="started", value="kills-its-worker")
    os.kill(os.getpid(), signal.SIGKILL)
