"""A project that has not run ``migrate`` yet hears so in one line, not a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import psycopg
from django.db import ProgrammingError, connection

from ..exceptions import TablesMissing
from .base import FUNCTIONS, TABLES, execute, rows

MISSING_TABLES = "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL"
MISSING_FUNCTIONS = (
    "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regprocedure(name) IS NULL"
)


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
    """Raise ``TablesMissing`` naming what is missing, tables first, then the functions a
    later migration created (the code is newer than the database); at a worker's start."""
    with connection.cursor() as cursor:
        execute(cursor, MISSING_TABLES, [list(TABLES)])
        missing = [table.name for table in rows(cursor, Table)]
        if missing:
            raise tables_missing(missing)
        execute(cursor, MISSING_FUNCTIONS, [list(FUNCTIONS)])
        functions = [function.name.partition("(")[0] for function in rows(cursor, Table)]
    if functions:
        database = connection.settings_dict.get("NAME") or "default"
        raise TablesMissing(
            f"django_conductor's functions do not exist in database {database!r} "
            f"({', '.join(functions)}): its migrations are behind this version of the "
            "package; run `python manage.py migrate`."
        )


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
