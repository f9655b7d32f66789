"""System checks: configuration errors are reported at start-up, each with a stable id."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import DatabaseError, connections

from . import listen_database
from .conf import PREFIX, Settings
from .options import is_delay_list, is_positive, keep_problem
from .registry import registry
from .triggers.cron import Cron
from .triggers.events import OnEvent
from .triggers.rows import OnModel, not_installed


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
def check_tasks(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E002: duplicate task names; E003: unknown or invalid options; E007: a bad trigger."""
    errors: list[CheckMessage] = []
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
                    f"Task {task.name!r} ({_where(task.func)}): {problem}.",
                    hint="See the task() options in the django_conductor reference.",
                    obj=task,
                    id="django_conductor.E003",
                )
            )
        for problem in trigger_problems(task):
            errors.append(
                Error(
                    f"Task {task.name!r} ({_where(task.func)}): {problem}.",
                    hint="Fix the trigger; it is left out until you do.",
                    obj=task,
                    id="django_conductor.E007",
                )
            )
    return errors


def trigger_problems(task: Any) -> list[str]:
    """What is wrong with the task's triggers (E007)."""
    problems: list[str] = []
    cron_names: set[str] = set()
    for trigger in task.triggers:
        if not isinstance(trigger, Cron | OnEvent | OnModel):
            problems.append(f"triggers must be cron(), on_event() or on_model(), not {trigger!r}")
            continue
        problem = trigger.problem()
        if isinstance(trigger, Cron):
            if problem is None and trigger.name in cron_names:
                problem = f"two cron schedules are named {trigger.name!r}"
            cron_names.add(trigger.name)
        if problem is not None:
            problems.append(problem)
    return problems


def _where(func: Any) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', func)!s}"


@register("django_conductor", Tags.database)
def check_row_triggers(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[Warning]:
    """W008: an on_model subscription whose trigger is not in the database. A warning, not
    an error: ``migrate`` runs the database checks before it migrates, and it is what
    installs the trigger."""
    if not databases or "default" not in databases:
        return []
    try:
        missing = not_installed()
    except DatabaseError:
        return []  # E001 and the worker's start say what is wrong with the database
    return [
        Warning(
            f"Model trigger: {problem}.",
            hint="Run `python manage.py migrate` (or `manage.py conductor_triggers`), which "
            "installs the triggers the tasks ask for.",
            id="django_conductor.W008",
        )
        for problem in missing
    ]


@register("django_conductor")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E004: CONDUCTOR_* settings of the wrong kind; E006: a heartbeat too slow for the lease."""
    wanted = {"CONCURRENCY": "a positive integer"}
    wanted.update(dict.fromkeys(Settings.DURATIONS, "a positive number of seconds or timedelta"))
    errors = [
        _setting_error(name, description)
        for name, description in wanted.items()
        if _configured(name) is not UNSET
        and not is_positive(_configured(name), integer=name == "CONCURRENCY")
    ]
    prefetch = _configured("PREFETCH")
    if prefetch is not UNSET and not (is_positive(prefetch, integer=True) or prefetch == 0):
        errors.append(_setting_error("PREFETCH", "a whole number, 0 or more"))
    delays = _configured("RETRY_DELAYS")
    if delays is not UNSET and not is_delay_list(delays):
        errors.append(
            _setting_error(
                "RETRY_DELAYS", "a non-empty list of seconds or timedeltas, none negative"
            )
        )
    retention = _configured("RETENTION")
    problem = None if retention is UNSET else keep_problem(retention)
    if problem is not None:
        errors.append(
            Error(
                f"{PREFIX}RETENTION must be {problem}.",
                hint="Give completed, failed and cancelled a timedelta, or None to keep them.",
                id="django_conductor.E004",
            )
        )
    interval = _configured("PRUNE_INTERVAL")
    if interval is not UNSET and interval is not None and not is_positive(interval):
        errors.append(
            _setting_error("PRUNE_INTERVAL", "None or a positive number of seconds or timedelta")
        )
    if not errors:
        current = Settings()
        if current.HEARTBEAT_INTERVAL * 2 > current.LEASE:
            errors.append(
                Error(
                    f"{PREFIX}HEARTBEAT_INTERVAL ({current.HEARTBEAT_INTERVAL}s) must be at most "
                    f"half of {PREFIX}LEASE ({current.LEASE}s), or running executions would "
                    "lose their lease between heartbeats.",
                    hint="Lower the heartbeat interval or raise the lease.",
                    id="django_conductor.E006",
                )
            )
    return errors


@register("django_conductor")
def check_listen_database(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E009: a ``CONDUCTOR_LISTEN_DATABASE`` that names no usable database."""
    problem = listen_database.problem(getattr(django_settings, PREFIX + "LISTEN_DATABASE", None))
    if problem is None:
        return []
    return [
        Error(
            f"{PREFIX}LISTEN_DATABASE must be {problem}.",
            hint="Point it at PostgreSQL itself, past any transaction pooler: for example "
            "{'HOST': 'db.internal', 'PORT': 5432}, or remove it to LISTEN where the default "
            "database is.",
            id="django_conductor.E009",
        )
    ]


UNSET = object()


def _configured(name: str) -> Any:
    """The project's own value, or UNSET when the setting is left at its default."""
    return getattr(django_settings, PREFIX + name, UNSET)


def _setting_error(name: str, description: str) -> Error:
    value = getattr(django_settings, PREFIX + name)
    return Error(
        f"{PREFIX}{name} must be {description}, not {value!r}.",
        hint=f"Fix or remove {PREFIX}{name} in your settings.",
        id="django_conductor.E004",
    )
