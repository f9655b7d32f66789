"""Tasks with concurrency limits (tests/test_concurrency.py). Each run records when its
handler began and ended, so a test can tell how many ran at once."""

import time

from django_conductor import on_event, task

from .models import SideEffect

__all__ = [
    "limited_hang_first",
    "limited_parent",
    "limited_per_customer",
    "limited_sleeper",
    "limited_three",
]


def _span(event, key: str, seconds: float) -> None:
    """A "began" and an "ended" SideEffect around ``seconds`` of work, valued
    ``key:execution id``; their created_at (one clock, the machine's) gives the overlap."""
    value = f"{key}:{event.execution_id}"
    SideEffect.objects.create(kind="began", value=value)
    time.sleep(seconds)
    SideEffect.objects.create(kind="ended", value=value)


@task(name="limited-three", concurrency=3)
def limited_three(event, ctx):
    _span(event, "all", event.payload.get("sleep", 0.2))


@task(
    name="limited-per-customer",
    concurrency=1,
    concurrency_key="customer.id",
    triggers=[on_event("customer.seen")],
)
def limited_per_customer(event, ctx):
    _span(event, str(event.payload["customer"]["id"]), 0.2)


@task(name="limited-hang-first", concurrency=1)
def limited_hang_first(event, ctx):
    """The first run of all hangs (its worker is to be killed); every later run is quick."""
    first = not SideEffect.objects.filter(kind="began").exists()
    _span(event, "all", 120 if first else 0)


@task(name="limited-sleeper", concurrency=1)
def limited_sleeper(event, ctx):
    SideEffect.objects.create(kind="slept", value=str(event.execution_id))
    ctx.sleep("nap", 3600)


@task(name="limited-parent")
def limited_parent(event, ctx):
    return ctx.invoke("child", limited_per_customer, {"customer": {"id": 9}})
