"""A durable task for tests/test_pgbouncer.py: steps, a sleep, a child and a retry, each of
which the worker writes through the pooler."""

from datetime import timedelta

from django_conductor import task

from .durable_tasks import effect


@task(name="through-the-pooler", max_attempts=2, retry_delays=[0])
def through_the_pooler(event, ctx):
    first = ctx.step("first", effect, "pooled-step", event.payload)
    ctx.sleep("nap", timedelta(seconds=0.2))
    child = ctx.invoke("child", "double", event.payload)
    if event.attempt == 1:
        raise RuntimeError("once more, from the recorded steps")
    return {"first": first, "child": child, "attempt": event.attempt}
