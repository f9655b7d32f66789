"""Batch tasks (tests/test_batches.py). Each call records the batch it got as one
SideEffect ("batch": its execution ids in order), and each event as another, so a test can
tell which executions ran together and how often."""

import os
import time
from datetime import timedelta

from django_conductor import on_event, task

from .models import SideEffect

__all__ = [
    "batch_async",
    "batch_fails",
    "batch_hang_first",
    "batch_insert",
    "batch_slow",
    "batch_stalls_first",
    "batch_uses_step",
    "batch_waits",
    "batch_windowed",
    "batch_wrong_length",
]


def record_batch(events) -> None:
    """One "batch" row naming the members, and one "event" row per event (bulk_create)."""
    SideEffect.objects.create(kind="batch", value=",".join(str(e.execution_id) for e in events))
    SideEffect.objects.bulk_create(
        SideEffect(kind="event", value=f"{e.execution_id}:{e.attempt}") for e in events
    )


@task(name="batch-insert", batch=5, triggers=[on_event("batch.seen")])
def batch_insert(events, ctx):
    record_batch(events)
    return [{"n": event.payload.get("n"), "size": len(events)} for event in events]


@task(name="batch-waits", batch=(3, timedelta(minutes=10)))
def batch_waits(events, ctx):
    record_batch(events)


@task(name="batch-fails", batch=10, max_attempts=2, retry_delays=[3600])
def batch_fails(events, ctx):
    record_batch(events)
    raise ValueError("the bulk insert failed")


@task(name="batch-wrong-length", batch=10)
def batch_wrong_length(events, ctx):
    record_batch(events)
    return [1]


@task(name="batch-uses-step", batch=10)
def batch_uses_step(events, ctx):
    return ctx.step("insert", record_batch, events)


@task(name="batch-async", batch=10)
async def batch_async(events, ctx):
    return [event.payload * 2 for event in events]


@task(name="batch-slow", batch=10)
def batch_slow(events, ctx):
    """Records its batch, then waits (up to a minute) for a "go" row from the test."""
    record_batch(events)
    deadline = time.monotonic() + 60
    while not SideEffect.objects.filter(kind="go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return [event.execution_id for event in events]


@task(name="batch-hang-first", batch=10)
def batch_hang_first(events, ctx):
    """The first batch of all hangs (its worker is to be killed); every later one is quick."""
    first = not SideEffect.objects.filter(kind="batch").exists()
    record_batch(events)
    if first:
        time.sleep(120)


@task(name="batch-windowed", batch=10, window=("22:00", "06:00"))
def batch_windowed(events, ctx):
    record_batch(events)


@task(name="batch-stalls-first", batch=10)
def batch_stalls_first(events, ctx):
    """The first batch of all waits for a "go" row (its worker is to be frozen meanwhile),
    then says it ended; each batch returns its process's pid for every event."""
    first = not SideEffect.objects.filter(kind="batch").exists()
    record_batch(events)
    deadline = time.monotonic() + 120
    while first and not SideEffect.objects.filter(kind="go").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("no go within 120 s")
        time.sleep(0.05)
    if first:
        SideEffect.objects.create(kind="stalled-ended")
    return [os.getpid()] * len(events)
