"""Tasks for the signals and OpenTelemetry tests (tests/test_signals.py,
tests/test_telemetry.py): steps, a failure and its retry, a child, an event and a batch."""

import contextlib

from django_conductor import NonRetryableError, on_event, task

from .models import SideEffect

__all__ = [
    "tel_batch",
    "tel_child",
    "tel_fails",
    "tel_on_event",
    "tel_parent",
    "tel_retries",
    "tel_steps",
]


def _double(n):
    return n * 2


def _refuse():
    raise ValueError("no such card")


@task(name="tel-steps")
def tel_steps(event, ctx):
    """Two steps, the second of which raises and is caught by the handler."""
    doubled = ctx.step("double", _double, event.payload["n"])
    with contextlib.suppress(ValueError):
        ctx.step("refuse", _refuse)
    return {"doubled": doubled}


@task(name="tel-retries", max_attempts=3, retry_delays=[0])
def tel_retries(event, ctx):
    """Fails its first attempt, completes its second."""
    if event.attempt == 1:
        raise RuntimeError("first attempt fails")
    return "ok"


@task(name="tel-fails", max_attempts=5)
def tel_fails(event, ctx):
    raise NonRetryableError("gave up")


@task(name="tel-child")
def tel_child(event, ctx):
    return event.payload + 1


@task(name="tel-parent")
def tel_parent(event, ctx):
    """A step, then a child: its first attempt parks waiting, its replay completes."""
    ctx.step("before", _double, 1)
    return ctx.invoke("child", "tel-child", 41)


@task(name="tel-on-event", triggers=[on_event("tel.happened")])
def tel_on_event(event, ctx):
    SideEffect.objects.create(kind="tel-event", value=str(event.payload))


@task(name="tel-batch", batch=3)
def tel_batch(events, ctx):
    return [event.payload for event in events]
