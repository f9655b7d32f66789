"""Tasks whose values are valid JSON or text that PostgreSQL cannot store
(tests/test_bad_values.py); side effects are SideEffect rows."""

import threading

from django_conductor import task

from .models import SideEffect

__all__ = [
    "bad_child_payload",
    "bad_exception_message",
    "bad_result",
    "bad_step_name",
    "bad_step_result",
    "good_steps",
    "hold_the_writer",
]

#: Text PostgreSQL cannot store, by the name a test passes in the payload.
BAD_TEXT = {"nul": "before\x00after", "lone-surrogate": "before\ud800after"}

#: Set by a test to let the gated handlers of one in-process run record their steps.
STEPS_GO = threading.Event()
WRITER_HOLD_GO = threading.Event()


def _effect(kind, value=""):
    SideEffect.objects.create(kind=kind, value=str(value))
    return kind


def _wait_for(gate, payload):
    if payload.get("gated") and not gate.wait(30):
        raise RuntimeError("the test never opened the gate")


@task(name="bad-values-hold-writer", max_attempts=1)
def hold_the_writer(event, ctx):
    """Record a step once the test says so: a test that holds the step table locked makes
    the step writer wait with this record while the other records gather behind it."""
    _wait_for(WRITER_HOLD_GO, event.payload)
    ctx.step("hold", _effect, "hold")
    return "held"


@task(name="bad-values-good-steps", max_attempts=2, retry_delays=[0])
def good_steps(event, ctx):
    _wait_for(STEPS_GO, event.payload)
    ctx.step("record", _effect, "good", event.payload["n"])
    return event.payload["n"]


@task(name="bad-values-step-result", max_attempts=2, retry_delays=[0])
def bad_step_result(event, ctx):
    _wait_for(STEPS_GO, event.payload)
    ctx.step("makes-bad-text", lambda: {"text": BAD_TEXT[event.payload["bad"]]})
    return "not reached"


@task(name="bad-values-step-name", max_attempts=2, retry_delays=[0])
def bad_step_name(event, ctx):
    _wait_for(STEPS_GO, event.payload)
    ctx.step("bad\x00name", _effect, "bad-name")
    return "not reached"


@task(name="bad-values-result", max_attempts=3, retry_delays=[0])
def bad_result(event, ctx):
    _effect("bad-result-run")
    return {"text": BAD_TEXT[event.payload["bad"]]}


@task(name="bad-values-exception", max_attempts=2, retry_delays=[0])
def bad_exception_message(event, ctx):
    _effect("bad-exception-run")
    raise RuntimeError(f"cannot handle {BAD_TEXT[event.payload['bad']]}")


@task(name="bad-values-child-payload", max_attempts=1)
def bad_child_payload(event, ctx):
    return ctx.invoke("child", "echo", {"text": BAD_TEXT[event.payload["bad"]]})
