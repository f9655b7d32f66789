"""A project that has not run ``migrate`` yet hears so in one line, not a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import psycopg
from django.db import ProgrammingError, connection

from ..exceptions import TablesMissing
from .base import TABLES, execute, rows

MISSING_TABLES = "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL"


class Table(NamedTuple):
    name: str


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
        execute(cursor, MISSING_TABLES, [list(TABLES)])
        missing = [table.name for table in rows(cursor, Table)]
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
