"""Cron expressions: parsed and stepped by cronsim, which keeps to the wall clock of a time
zone across daylight-saving changes (a tick in the skipped hour runs once at its end; a tick
in the repeated hour runs once, the first time)."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from cronsim import CronSim, CronSimError
from django.conf import settings as django_settings

from .. import payloads
from ..options import name_problem


def zone(name: str | None) -> tzinfo:
    """The named zone, or the project's ``TIME_ZONE``."""
    return zoneinfo.ZoneInfo(name or zone_name(None))


def zone_name(name: str | None) -> str:
    return name or getattr(django_settings, "TIME_ZONE", None) or "UTC"


def expression_problem(expression: object, tz: object = None) -> str | None:
    """What is wrong with a cron expression (5 fields, or 6 with seconds first) or its time
    zone, or None."""
    if not isinstance(expression, str):
        return f"a cron expression must be a string, not {expression!r}"
    if tz is not None and not isinstance(tz, str):
        return f"tz must be a time zone name such as 'Europe/Berlin', not {tz!r}"
    try:
        when = datetime.now(zone(tz))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"tz {tz!r} is not a time zone this machine knows"
    try:
        CronSim(expression, when)
    except CronSimError as exc:
        return (
            f"cron expression {expression!r} is not valid ({exc}): give 5 fields (minute hour "
            "day month weekday) or 6 with seconds first"
        )
    return None


def next_tick(expression: str, tz: str | None, after: datetime) -> datetime:
    """The first tick strictly after ``after``, in ``tz``'s wall clock."""
    return next(CronSim(expression, after.astimezone(zone(tz)).replace(microsecond=0)))


def describe(expression: str) -> str:
    """The expression in words, e.g. "At 09:00 on Monday through Friday"."""
    try:
        return str(CronSim(expression, datetime.now(zone("UTC"))).explain())
    except CronSimError:
        return expression


@dataclass(frozen=True)
class Cron:
    """A static schedule, given in ``task(triggers=[cron(...)])``."""

    expression: str
    name: str
    payload: Any = None
    tz: str | None = None

    def problem(self) -> str | None:
        name = name_problem(self.name)
        if name is not None:
            return f"cron schedule {name}"
        try:
            payloads.dumps(self.payload)
        except (TypeError, ValueError) as exc:
            why = payloads.explain(self.payload, exc, "payload")
            return f"cron schedule {self.name!r}: {why}"
        return expression_problem(self.expression, self.tz)


def cron(expression: str, name: str, *, payload: Any = None, tz: str | None = None) -> Cron:
    """Run the task on ``expression``'s ticks, one execution per tick however many workers
    run, with ``name`` as its event name and ``payload`` as its payload. Ticks are computed in
    ``tz`` (default: the project's ``TIME_ZONE``). A bad expression is reported by the system
    checks (django_conductor.E007), not here, so that an import never fails on it."""
    return Cron(expression, name, payload, tz)
