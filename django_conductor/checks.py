"""System checks: configuration errors are reported at start-up, each with a stable id."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.checks import Error, register
from django.db import connections

from .conf import PREFIX, Settings
from .registry import registry

@register("django_conductor")
def check_database(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E001: the default database must be PostgreSQL; E005: through psycopg 3."""
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return database_errors(connections["default"], psycopg3=is_psycopg3)


def database_errors(connection: Any, *, psycopg3: bool) -> list[Error]:
    if connection.vendor != "postgresql":
        return [
            Error(
                "django_conductor needs PostgreSQL, but the default database is "
                f"{connection.vendor} ({connection.settings_dict.get('ENGINE')!r}).",
                hint="Set DATABASES['default']['ENGINE'] to 'django.db.backends.postgresql'.",
                id="django_conductor.E001",
            )
        ]
    if not psycopg3:
        return [
            Error(
                "django_conductor needs psycopg 3, but Django is using psycopg2.",
                hint="pip install 'psycopg[binary]' (or 'psycopg[c]') and uninstall psycopg2.",
                id="django_conductor.E005",
            )
        ]
    return []


@register("django_conductor")
def check_tasks(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E002: duplicate task names; E003: unknown or invalid task options."""
    errors = []
    for duplicate in registry.duplicates:
        first = registry.tasks[duplicate.name]
        errors.append(
            Error(
                f"Two tasks are registered as {duplicate.name!r}: "
                f"{_where(first.func)} and {_where(duplicate.func)}.",
                hint="Give each task a unique name=...; names identify stored executions.",
                obj=duplicate,
                id="django_conductor.E002",
            )
        )
    for task in registry:
        for problem in task.errors:
            errors.append(
                Error(
                    f"Task {task.name!r} ({_where(task.func)}) has an {problem}.",
                    hint="See the task() options in the django_conductor reference.",
                    obj=task,
                    id="django_conductor.E003",
                )
            )
    return errors


def _where(func: Any) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', func)!s}"


@register("django_conductor")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E004: CONDUCTOR_* settings with values of the wrong kind."""
    errors = []
    positive = {"CONCURRENCY": int, **{name: float for name in Settings.DURATIONS}}
    for name, kind in positive.items():
        if not hasattr(django_settings, PREFIX + name):
            continue
        value = getattr(django_settings, PREFIX + name)
        if not _positive(value, kind):
            errors.append(
                Error(
                    f"{PREFIX}{name} must be a positive {'integer' if kind is int else 'number of seconds or timedelta'}, not {value!r}.",
                    hint=f"Fix or remove {PREFIX}{name} in your settings.",
                    id="django_conductor.E004",
                )
            )
    if hasattr(django_settings, PREFIX + "RETRY_DELAYS"):
        delays = django_settings.CONDUCTOR_RETRY_DELAYS
        if not isinstance(delays, list | tuple) or not delays or not all(
            _positive(d, float, allow_zero=True) for d in delays
        ):
            errors.append(
                Error(
                    f"{PREFIX}RETRY_DELAYS must be a non-empty list of seconds or timedeltas, "
                    f"none negative, not {delays!r}.",
                    hint="For example CONDUCTOR_RETRY_DELAYS = [15, 30, 60].",
                    id="django_conductor.E004",
                )
            )
    lease = Settings().LEASE if not errors else None
    beat = Settings().HEARTBEAT_INTERVAL if not errors else None
    if lease is not None and beat is not None and beat * 2 > lease:
        errors.append(
            Error(
                f"{PREFIX}HEARTBEAT_INTERVAL ({beat}s) must be at most half of "
                f"{PREFIX}LEASE ({lease}s), or live executions would lose their lease.",
                hint="Lower the heartbeat interval or raise the lease.",
                id="django_conductor.E006",
            )
        )
    return errors


def _positive(value: Any, kind: type, *, allow_zero: bool = False) -> bool:
    from datetime import timedelta

    if isinstance(value, bool):
        return False
    if kind is float and isinstance(value, timedelta):
        value = value.total_seconds()
    if not isinstance(value, int if kind is int else int | float):
        return False
    return value >= 0 if allow_zero else value > 0
