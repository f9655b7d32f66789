"""A project that has not run ``migrate`` yet hears so in one line, not a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import ProgrammingError, connection

from .exceptions import TablesMissing
from .sql import EXECUTION, FAILED, HEARTBEAT, STEP

TABLES = (EXECUTION, STEP, FAILED, HEARTBEAT)

_MISSING = "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL"


def tables_missing(missing: list[str] | None = None) -> TablesMissing:
    database = connection.settings_dict.get("NAME") or "default"
    which = f" ({', '.join(missing)})" if missing else ""
    return TablesMissing(
        f"django_conductor's tables do not exist in database {database!r}{which}: "
        "run `python manage.py migrate`."
    )


def check_tables() -> None:
    """Raise ``TablesMissing`` naming what is missing; one query, at a worker's start."""
    with connection.cursor() as cursor:
        cursor.execute(_MISSING, [list(TABLES)])
        missing = [row[0] for row in cursor.fetchall()]
    if missing:
        raise tables_missing(missing)


@contextmanager
def tables_required() -> Iterator[None]:
    """Turn "relation does not exist" for our tables into ``TablesMissing``."""
    try:
        yield
    except (ProgrammingError, psycopg.errors.UndefinedTable) as exc:
        cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
        if isinstance(cause, psycopg.errors.UndefinedTable) and any(
            table in str(cause) for table in TABLES
        ):
            raise tables_missing() from exc
        raise
