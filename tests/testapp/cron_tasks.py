"""Tasks for the cron tests. ``static-tick`` has a static schedule only when the worker's
environment gives one (CONDUCTOR_TEST_STATIC_CRON), so that no other test meets its ticks."""

import json
import os

from django_conductor import cron, task

from .models import SideEffect

__all__ = ["schedules_one", "static_tick", "tick"]


def _record_tick(event):
    value = json.dumps([event.name, event.scheduled_at.isoformat(), event.payload])
    SideEffect.objects.create(kind="tick", value=value)


@task(name="tick")
def tick(event, ctx):
    _record_tick(event)
    return event.scheduled_at.isoformat()


_STATIC = os.environ.get("CONDUCTOR_TEST_STATIC_CRON")


@task(
    name="static-tick",
    triggers=[cron(_STATIC, "from-code", payload={"static": True})] if _STATIC else [],
)
def static_tick(event, ctx):
    _record_tick(event)


@task(name="schedules-one")
def schedules_one(event, ctx):
    ctx.schedule("tick", "from-a-handler", "0 0 1 1 *", payload=event.payload)
    return "scheduled"
