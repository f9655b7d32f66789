"""Tasks subscribed to custom events, for the event tests."""

import json

from django_conductor import on_event, task

from .models import SideEffect

__all__ = ["emits_then_fails_once", "on_paid", "on_paid_big", "on_paid_eu"]


def _record(event):
    SideEffect.objects.create(kind="event", value=json.dumps([event.name, event.payload]))


@task(name="on-paid", triggers=[on_event("order.paid")])
def on_paid(event, ctx):
    _record(event)


@task(
    name="on-paid-big",
    triggers=[on_event("order.paid", when=lambda p: p["amount"] >= 100, fields=["id"])],
    invocable=False,
)
def on_paid_big(event, ctx):
    _record(event)


@task(name="on-paid-eu", triggers=[on_event("order.paid", when={"region": "eu"})])
def on_paid_eu(event, ctx):
    _record(event)


@task(name="emits-then-fails-once", max_attempts=2, retry_delays=[0])
def emits_then_fails_once(event, ctx):
    first = ctx.emit("order.paid", event.payload)
    second = ctx.emit("order.paid", {**event.payload, "again": True})
    if event.attempt == 1:
        raise RuntimeError("after the emits")
    return [len(first), len(second)]
