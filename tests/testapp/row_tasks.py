"""Tasks started by database-row triggers, for the model-trigger tests."""

import json

from django_conductor import on_model, task

from .models import Order, SideEffect

__all__ = [
    "on_order_deleted",
    "on_order_inserted",
    "on_order_total_changed",
    "on_shipment",
    "on_widget",
]


def _record(event):
    SideEffect.objects.create(kind="row", value=json.dumps([event.name, event.payload]))


@task(name="on-order-inserted", triggers=[on_model(Order, "insert")], invocable=False)
def on_order_inserted(event, ctx):
    _record(event)


@task(
    name="on-order-total-changed",
    triggers=[on_model(Order, "update", columns=["total"], when="NEW.total >= 100")],
    invocable=False,
)
def on_order_total_changed(event, ctx):
    _record(event)


@task(
    name="on-order-deleted",
    triggers=[on_model("testapp.Order", "delete", columns=["id", "status"])],
    invocable=False,
)
def on_order_deleted(event, ctx):
    _record(event)


@task(
    name="on-shipment",
    triggers=[on_model("testapp.Shipment", "insert")],
    invocable=False,
    concurrency=2,
    concurrency_key="new.label",
)
def on_shipment(event, ctx):
    _record(event)


@task(name="on-widget", triggers=[on_model("testapp.Widget", "insert")], invocable=False)
def on_widget(event, ctx):
    _record(event)
