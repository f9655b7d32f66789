"""Tasks with a time window. A worker subprocess takes the window from the environment, so
that a test can choose one relative to the local time it runs at."""

import os
import time

from django_conductor import task

from .models import SideEffect

WINDOW = tuple(os.environ.get("CONDUCTOR_TEST_WINDOW", "22:00-06:00").split("-"))

__all__ = ["windowed", "windowed_two_steps", "windowed_workflow"]


@task(name="windowed", window=WINDOW)
def windowed(event, ctx):
    SideEffect.objects.create(kind="windowed-ran", value=str(event.payload))
    return "ran"


def _first_then_wait_for_go():
    SideEffect.objects.create(kind="first-step")
    deadline = time.monotonic() + 60
    while not SideEffect.objects.filter(kind="go").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("no go within 60 s")
        time.sleep(0.05)
    return 1


@task(name="windowed-two-steps", window=WINDOW)
def windowed_two_steps(event, ctx):
    """Its first step waits until the test says go, so a test can close the window between
    the two steps."""
    first = ctx.step("first", _first_then_wait_for_go)
    second = ctx.step("second", lambda: SideEffect.objects.create(kind="second-step").pk and 2)
    return first + second


@task(name="windowed-workflow", window=WINDOW)
def windowed_workflow(event, ctx):
    """A step, a sleep and a child, all inside the window."""
    before = ctx.step("before", lambda: "stepped")
    ctx.sleep("nap", 1)
    child = ctx.invoke("child", "echo", {"from": "windowed"})
    ctx.checkpoint()
    return [before, child["echo"]]
