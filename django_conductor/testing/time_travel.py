"""Time travel for tests. The database's clock is the only one the engine reads, and it
cannot be moved forward; so ``advance`` moves the recorded times back instead, all by the
same amount, which is the same thing for everything that compares a record with now."""

from __future__ import annotations

import math
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F, Model

from ..models import (
    ConcurrencyLimit,
    Execution,
    FailedExecution,
    Schedule,
    Step,
    WorkerHeartbeat,
)
from ..statuses import CLAIMABLE
from ..store.notify import notify_ready

#: Every recorded time that ``advance`` moves, by model.
MOVED: dict[type[Model], tuple[str, ...]] = {
    Execution: (
        "run_at",
        "scheduled_at",
        "cancel_requested_at",
        "created_at",
        "started_at",
        "finished_at",
    ),
    Step: ("started_at", "finished_at", "wake_at"),
    FailedExecution: ("failed_at", "retried_at"),
    Schedule: ("next_run_at", "last_run_at", "created_at", "updated_at"),
    ConcurrencyLimit: ("updated_at",),
}
#: Times ``advance`` leaves alone: those of live worker processes, which keep them on their
#: own clocks (a lease moved back would expire under the worker holding it).
LEFT_ALONE: dict[type[Model], tuple[str, ...]] = {
    Execution: ("lease_expires_at",),
    WorkerHeartbeat: ("started_at", "last_seen_at"),
}


def advance(delta: timedelta | float) -> None:
    """Make ``delta`` (a timedelta, or seconds) pass for everything recorded: sleeps,
    child and event timeouts, retry backoffs, delayed runs, debounced runs and cron ticks
    fall due as they would after that long, and finished executions age towards their
    retention. Runs nothing: ``drain()`` (or a worker) runs what fell due, and is woken."""
    shift = _duration(delta)
    with transaction.atomic():
        for model, fields in MOVED.items():
            model._default_manager.update(**{field: F(field) - shift for field in fields})
        queues = Execution.objects.filter(status__in=CLAIMABLE).values_list("queue", flat=True)
        with connection.cursor() as cursor:
            notify_ready(cursor, set(queues))


def _duration(delta: object) -> timedelta:
    if isinstance(delta, bool) or not isinstance(delta, timedelta | int | float):
        raise TypeError(f"advance() takes a timedelta or a number of seconds, not {delta!r}")
    if isinstance(delta, float) and not math.isfinite(delta):
        raise ValueError(f"advance() needs a finite number of seconds, not {delta!r}")
    shift = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
    if shift < timedelta(0):
        raise ValueError(f"advance() moves time forward only, not by {delta!r}")
    return shift
