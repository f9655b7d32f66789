"""Benchmark tasks: they do no work of their own, so what is measured is the engine."""

import time

from django_conductor import on_event, on_model, task

from .models import PlainRow, TriggeredRow

STEPS = 10


def nothing() -> None:
    return None


@task(name="bench-noop")
def noop(event, ctx):
    return None


@task(name="bench-steps")
def ten_steps(event, ctx):
    for n in range(STEPS):
        ctx.step(f"step-{n}", nothing)
    return None


@task(name="bench-sleep-child")
def sleep_and_child(event, ctx):
    ctx.sleep("nap", 0)
    return ctx.invoke("child", "bench-noop")


#: Subscribers for the emit workload: one task listens to "bench.one", ten to "bench.ten".
@task(name="bench-listener-0", triggers=[on_event("bench.one"), on_event("bench.ten")])
def listener_0(event, ctx):
    return None


def _listener(n: int):
    @task(name=f"bench-listener-{n}", triggers=[on_event("bench.ten")])
    def listener(event, ctx):
        return None

    return listener


LISTENERS = [_listener(n) for n in range(1, 10)]


@task(name="bench-row-inserted", triggers=[on_model(TriggeredRow, "insert")], invocable=False)
def row_inserted(event, ctx):
    return None


@task(name="bench-limited-5", concurrency=5)
def limited_five(event, ctx):
    return None


@task(name="bench-insert-one")
def insert_one(event, ctx):
    PlainRow.objects.create(n=event.payload["n"], label="one")


@task(name="bench-insert-batch", batch=100)
def insert_batch(events, ctx):
    PlainRow.objects.bulk_create(PlainRow(n=e.payload["n"], label="batch") for e in events)


@task(name="bench-hold")
def hold(event, ctx):
    """Keeps a worker thread busy for ``seconds``, for the pickup workload's busy worker."""
    time.sleep(event.payload["seconds"])
